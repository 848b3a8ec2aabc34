//! Touch-screen mode: a small page on 127.0.0.1 with one large button per
//! service (Vietnamese, readable by the elderly) that Chromium shows full
//! screen; a touch counts as a press and the page says what happened.

use std::net::SocketAddr;

use axum::extract::State;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::buttons::{Outcome, Press};
use crate::link::Link;

#[derive(Clone)]
struct Touch {
    link: Link,
    presses: mpsc::Sender<Press>,
}

pub async fn serve(
    listen: SocketAddr,
    link: Link,
    presses: mpsc::Sender<Press>,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/", get(page))
        .route("/status", get(status))
        .route("/press", post(press))
        .with_state(Touch { link, presses });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "touch-screen page ready");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn status(State(t): State<Touch>) -> impl IntoResponse {
    let w = t.link.welcome().unwrap_or_default();
    Json(json!({
        "connected": t.link.connected(),
        "site": w.site_name,
        "services": w.services.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
    }))
}

#[derive(serde::Deserialize)]
struct PressBody {
    service: String,
}

async fn press(State(t): State<Touch>, Json(body): Json<PressBody>) -> impl IntoResponse {
    let (tx, rx) = oneshot::channel();
    let p = Press {
        service: body.service,
        priority: None,
        reply: Some(tx),
    };
    if t.presses.try_send(p).is_err() {
        return Json(
            json!({"ok": false, "message": "Máy đang bận, vui lòng chạm lại sau giây lát."}),
        );
    }
    match rx.await {
        Ok(Outcome::Printed { number }) => Json(json!({"ok": true, "number": number,
            "message": format!("Mời lấy phiếu số {number}")})),
        Ok(Outcome::PrinterNotReady(m)) | Ok(Outcome::OutOfService(m)) => {
            Json(json!({"ok": false, "message": m}))
        }
        Err(_) => Json(json!({"ok": false, "message": "Máy lấy số tạm ngừng phục vụ."})),
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

const PAGE: &str = r#"<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Lấy số thứ tự</title>
<style>
 body{margin:0;font-family:"DejaVu Sans",sans-serif;background:#f4f6f8;color:#111;display:flex;flex-direction:column;height:100vh}
 h1{font-size:4vh;text-align:center;margin:2vh 0}
 #hint{font-size:3vh;text-align:center;margin:0 0 2vh}
 #buttons{flex:1;display:grid;gap:2vh;padding:0 3vw 3vh;grid-template-columns:repeat(auto-fit,minmax(40vw,1fr))}
 button{font-size:6vh;font-weight:bold;border:0;border-radius:2vh;background:#0b5cad;color:#fff;padding:3vh}
 button:active{background:#073f78}
 #msg{position:fixed;inset:0;display:none;align-items:center;justify-content:center;text-align:center;font-size:7vh;background:#fff;padding:5vw}
 #offline{display:none;background:#b00020;color:#fff;font-size:3.5vh;text-align:center;padding:1vh}
</style></head><body>
<div id="offline">Máy lấy số đang mất kết nối. Vui lòng chờ hoặc đến quầy tiếp đón.</div>
<h1 id="site">Lấy số thứ tự</h1>
<p id="hint">Chạm vào dịch vụ bạn cần để lấy số</p>
<div id="buttons"></div>
<div id="msg"></div>
<script>
let busy=false;
async function load(){
  try{
    const s=await (await fetch('/status')).json();
    document.getElementById('offline').style.display=s.connected?'none':'block';
    if(s.site) document.getElementById('site').textContent=s.site;
    const box=document.getElementById('buttons');
    if(box.dataset.n!==String(s.services.length)){
      box.innerHTML='';
      for(const sv of s.services){
        const b=document.createElement('button');
        b.textContent=sv.name; b.onclick=()=>press(sv.id); box.appendChild(b);
      }
      box.dataset.n=String(s.services.length);
    }
  }catch(e){document.getElementById('offline').style.display='block';}
}
async function press(id){
  if(busy) return; busy=true;
  const m=document.getElementById('msg'); m.textContent='Đang in số…'; m.style.display='flex';
  try{
    const r=await (await fetch('/press',{method:'POST',headers:{'Content-Type':'application/json'},body:JSON.stringify({service:id})})).json();
    m.textContent=r.message;
  }catch(e){m.textContent='Máy lấy số tạm ngừng phục vụ.';}
  setTimeout(()=>{m.style.display='none';busy=false;},5000);
}
load(); setInterval(load,3000);
</script></body></html>"#;
