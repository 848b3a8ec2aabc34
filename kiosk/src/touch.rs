//! Touch-screen mode: a small page on 127.0.0.1 with one large button per
//! service (Vietnamese, readable by the elderly) that Chromium shows full
//! screen; a touch counts as a press and the page says what happened. A
//! keypad of big digits takes a booking's 8-digit code and checks it in
//! (§11); the page shows "Đã quét CCCD" while a scanned CCCD is held (never
//! any of its data), asks for a CCCD scan when a check-in needs one, blinks
//! "Vui lòng chờ" while a press is held up (rule 107: the server is
//! switching over; the kiosk keeps asking), and shows the headline of a
//! refusal (rule 84) and the outcome of scans.

use std::net::SocketAddr;

use axum::extract::State;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use crate::buttons::{Outcome, Press, Request};
use crate::daemon::Screen;
use crate::link::Link;

#[derive(Clone)]
struct Touch {
    link: Link,
    presses: mpsc::Sender<Press>,
    screen: watch::Receiver<Screen>,
}

pub async fn serve(
    listen: SocketAddr,
    link: Link,
    presses: mpsc::Sender<Press>,
    screen: watch::Receiver<Screen>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "touch-screen page ready");
    axum::serve(listener, router(link, presses, screen)).await?;
    Ok(())
}

/// The page's routes: `/`, `/status`, `/press` and `/checkin`.
pub fn router(link: Link, presses: mpsc::Sender<Press>, screen: watch::Receiver<Screen>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/status", get(status))
        .route("/press", post(press))
        .route("/checkin", post(checkin))
        .with_state(Touch {
            link,
            presses,
            screen,
        })
}

async fn status(State(t): State<Touch>) -> impl IntoResponse {
    let w = t.link.welcome().unwrap_or_default();
    let screen = t.screen.borrow().clone();
    Json(json!({
        "connected": t.link.connected(),
        "site": w.site_name,
        "services": w.services.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
        "cccd": screen.cccd,
        "waiting_for_cccd": screen.waiting_for_cccd,
        "please_wait": screen.please_wait,
        "notice": screen.notice,
    }))
}

#[derive(serde::Deserialize)]
struct PressBody {
    service: String,
}

#[derive(serde::Deserialize)]
struct CheckInBody {
    code: String,
}

async fn press(State(t): State<Touch>, Json(body): Json<PressBody>) -> impl IntoResponse {
    let request = Request::Issue {
        service: body.service,
        priority: None,
    };
    Json(ask(&t, request).await)
}

/// A booking code typed on the keypad.
async fn checkin(State(t): State<Touch>, Json(body): Json<CheckInBody>) -> impl IntoResponse {
    Json(ask(&t, Request::Code(body.code.trim().to_string())).await)
}

/// Hands the request to the daemon and says what became of it.
async fn ask(t: &Touch, request: Request) -> serde_json::Value {
    let (tx, rx) = oneshot::channel();
    let p = Press {
        request,
        reply: Some(tx),
    };
    if t.presses.try_send(p).is_err() {
        return json!({"ok": false, "message": "Máy đang bận, vui lòng chạm lại sau giây lát."});
    }
    match rx.await {
        Ok(outcome) => {
            let (ok, headline, message) = outcome.describe();
            let number = match &outcome {
                Outcome::Printed { number } => Some(number.clone()),
                _ => None,
            };
            json!({"ok": ok, "number": number, "headline": headline, "message": message})
        }
        Err(_) => json!({"ok": false, "message": "Tạm ngưng cấp số, vui lòng thử lại."}),
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

const PAGE: &str = r#"<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Lấy số thứ tự</title>
<style>
 body{margin:0;font-family:"DejaVu Sans",sans-serif;background:#f4f6f8;color:#111;display:flex;flex-direction:column;height:100vh;user-select:none}
 h1{font-size:4vh;text-align:center;margin:2vh 0}
 #hint{font-size:3vh;text-align:center;margin:0 0 2vh}
 #buttons{flex:1;display:grid;gap:2vh;padding:0 3vw 2vh;grid-template-columns:repeat(auto-fit,minmax(40vw,1fr))}
 button{font-family:inherit;font-size:6vh;font-weight:bold;border:0;border-radius:2vh;background:#0b5cad;color:#fff;padding:3vh}
 button:active{background:#073f78}
 #codebtn{margin:0 3vw 3vh;background:#1b7f3b;font-size:5vh}
 #codebtn:active{background:#0f5426}
 #cccd{display:none;font-size:4vh;font-weight:bold;text-align:center;padding:1.5vh;margin:0 3vw 2vh;border-radius:1.5vh}
 #cccd.held{display:block;background:#d7f5df;color:#0f5426}
 #cccd.wait{display:block;background:#fff1c2;color:#6b4e00}
 #msg{position:fixed;inset:0;display:none;flex-direction:column;align-items:center;justify-content:center;text-align:center;background:#fff;padding:5vw}
 #msgh{font-size:10vh;font-weight:bold;margin-bottom:3vh}
 #msg.bad #msgh{color:#b00020}
 #msgt{font-size:5vh}
 #wait{position:fixed;inset:0;display:none;flex-direction:column;align-items:center;justify-content:center;text-align:center;background:#fff1c2;color:#6b4e00;padding:5vw;z-index:10}
 #wait.on{display:flex}
 #wait b{font-size:11vh;animation:blink 1s steps(2,start) infinite}
 #wait span{font-size:5vh;margin-top:3vh}
 #wait i{font-size:3vh;margin-top:2vh;font-style:normal;color:#8a6d1f}
 @keyframes blink{to{visibility:hidden}}
 #offline{display:none;background:#b00020;color:#fff;font-size:3.5vh;text-align:center;padding:1vh}
 #pad{position:fixed;inset:0;display:none;flex-direction:column;background:#f4f6f8;padding:2vh 4vw;box-sizing:border-box}
 #pad h2{font-size:4.5vh;text-align:center;margin:1vh 0}
 #digits{display:flex;justify-content:center;gap:1.2vw;margin:1vh 0 2vh}
 #digits span{width:9vw;max-width:9vh;height:11vh;border:0.5vh solid #0b5cad;border-radius:1vh;background:#fff;font-size:8vh;font-weight:bold;display:flex;align-items:center;justify-content:center}
 #keys{flex:1;display:grid;grid-template-columns:repeat(3,1fr);gap:1.5vh}
 #keys button{font-size:8vh;padding:0}
 #keys .side{background:#5a6673;font-size:4.5vh}
 #padbar{display:grid;grid-template-columns:1fr 2fr;gap:1.5vh;margin-top:1.5vh}
 #padbar button{font-size:5vh;padding:2.5vh}
 #cancel{background:#5a6673}
 #go{background:#1b7f3b}
 #go:disabled{background:#9fb3a5}
</style></head><body>
<div id="offline">Máy lấy số đang mất kết nối. Vui lòng chờ hoặc đến quầy tiếp đón.</div>
<h1 id="site">Lấy số thứ tự</h1>
<p id="hint">Chạm vào dịch vụ bạn cần để lấy số</p>
<div id="cccd"></div>
<div id="buttons"></div>
<button id="codebtn" onclick="openPad()">Đã đặt lịch hẹn? Chạm để nhập mã</button>
<div id="pad">
 <h2>Nhập mã lịch hẹn (8 chữ số)</h2>
 <div id="digits"></div>
 <div id="keys"></div>
 <div id="padbar"><button id="cancel" onclick="closePad()">Quay lại</button><button id="go" onclick="sendCode()" disabled>Lấy số</button></div>
</div>
<div id="msg"><div id="msgh"></div><div id="msgt"></div></div>
<div id="wait"><b>VUI LÒNG CHỜ</b><span>Đang lấy số cho bạn, xin đừng bấm lại.</span><i>Please wait</i></div>
<script>
let busy=false, code='', seen=null;
function show(r){
  const m=document.getElementById('msg');
  document.getElementById('msgh').textContent=r.headline||'';
  document.getElementById('msgt').textContent=r.message||'';
  m.className=r.ok?'':'bad'; m.style.display='flex';
}
function hideSoon(){setTimeout(()=>{document.getElementById('msg').style.display='none';busy=false;},5000);}
async function load(){
  try{
    const s=await (await fetch('/status')).json();
    document.getElementById('offline').style.display=s.connected?'none':'block';
    document.getElementById('wait').className=s.please_wait?'on':'';
    if(s.site) document.getElementById('site').textContent=s.site;
    const c=document.getElementById('cccd');
    if(s.waiting_for_cccd){c.className='wait';c.textContent='Mời quét mã QR trên thẻ CCCD để hoàn tất lịch hẹn';}
    else if(s.cccd){c.className='held';c.textContent='✓ Đã quét CCCD. Mời chọn dịch vụ hoặc nhập mã lịch hẹn';}
    else{c.className='';c.textContent='';}
    const box=document.getElementById('buttons');
    if(box.dataset.n!==String(s.services.length)){
      box.innerHTML='';
      for(const sv of s.services){
        const b=document.createElement('button');
        b.textContent=sv.name; b.onclick=()=>press(sv.id); box.appendChild(b);
      }
      box.dataset.n=String(s.services.length);
    }
    const n=s.notice;
    if(seen===null){seen=n?n.seq:0;}
    else if(n&&n.seq>seen){seen=n.seq; if(!busy){busy=true;show(n);hideSoon();}}
  }catch(e){document.getElementById('offline').style.display='block';}
}
async function ask(path,body){
  busy=true; show({ok:true,headline:'',message:'Đang in số…'});
  try{
    const r=await (await fetch(path,{method:'POST',headers:{'Content-Type':'application/json'},body:JSON.stringify(body)})).json();
    show(r);
  }catch(e){show({ok:false,message:'Tạm ngưng cấp số, vui lòng thử lại.'});}
  hideSoon();
}
function press(id){ if(!busy) ask('/press',{service:id}); }
function drawCode(){
  const d=document.getElementById('digits'); d.innerHTML='';
  for(let i=0;i<8;i++){const sp=document.createElement('span');sp.textContent=code[i]||'';d.appendChild(sp);}
  document.getElementById('go').disabled=code.length!==8;
}
function key(k){
  if(k==='del') code=code.slice(0,-1);
  else if(k==='clr') code='';
  else if(code.length<8) code+=k;
  drawCode();
}
function openPad(){ if(busy) return; code=''; drawCode(); document.getElementById('pad').style.display='flex'; }
function closePad(){ document.getElementById('pad').style.display='none'; code=''; }
function sendCode(){
  if(code.length!==8||busy) return;
  const c=code; closePad(); ask('/checkin',{code:c});
}
(function(){
  const keys=document.getElementById('keys');
  for(const k of ['1','2','3','4','5','6','7','8','9','clr','0','del']){
    const b=document.createElement('button');
    b.textContent=k==='del'?'Xóa ⌫':k==='clr'?'Xóa hết':k;
    if(k.length>1) b.className='side';
    b.onclick=()=>key(k); keys.appendChild(b);
  }
  drawCode();
})();
load(); setInterval(load,1000);
</script></body></html>"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::Notice;

    async fn call(app: &Router, method: &str, path: &str, body: &str) -> serde_json::Value {
        use tower::ServiceExt;
        let req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
    }

    #[tokio::test]
    async fn a_typed_code_goes_to_the_daemon_and_its_refusal_shows() {
        let link = Link::start("ws://127.0.0.1:9/api/v1/ws".into(), "t".into());
        let (presses, mut rx) = mpsc::channel(4);
        let (screen_tx, screen) = watch::channel(Screen::default());
        let app = router(link, presses, screen);
        // The daemon's side: answers the typed code with rule 84's refusal.
        let daemon = tokio::spawn(async move {
            let p: Press = rx.recv().await.unwrap();
            assert_eq!(p.request, Request::Code("40817269".into()));
            p.reply
                .unwrap()
                .send(Outcome::Refused {
                    code: "too_early".into(),
                    headline: "CHƯA ĐẾN GIỜ".into(),
                    comeback: Some("08:00".into()),
                })
                .unwrap();
        });
        let r = call(&app, "POST", "/checkin", r#"{"code":" 40817269 "}"#).await;
        daemon.await.unwrap();
        assert_eq!(r["ok"], false);
        assert_eq!(r["headline"], "CHƯA ĐẾN GIỜ");
        assert_eq!(r["message"], "Mời quay lại lúc 08:00");

        // The page learns a CCCD is held, and nothing of it.
        screen_tx.send_modify(|s| {
            s.cccd = true;
            s.notice = Some(Notice {
                seq: 3,
                ok: true,
                headline: Some("Đã quét CCCD".into()),
                message: String::new(),
            });
        });
        let s = call(&app, "GET", "/status", "").await;
        assert_eq!(s["cccd"], true);
        assert_eq!(s["waiting_for_cccd"], false);
        assert_eq!(s["please_wait"], false);
        screen_tx.send_modify(|s| s.please_wait = true);
        let s = call(&app, "GET", "/status", "").await;
        assert_eq!(s["please_wait"], true, "the page blinks 'please wait'");
        assert_eq!(s["notice"]["seq"], 3);
        assert_eq!(s["notice"]["headline"], "Đã quét CCCD");
    }

    #[test]
    fn the_page_has_a_keypad_in_vietnamese() {
        for words in [
            "Nhập mã lịch hẹn",
            "Đã quét CCCD",
            "Mời quét mã QR trên thẻ CCCD",
            "VUI LÒNG CHỜ",
            "please_wait",
            "/checkin",
            "Xóa",
        ] {
            assert!(PAGE.contains(words), "{words}");
        }
    }
}
