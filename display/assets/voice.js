// voice.js: announces calls in Vietnamese, "Mời số A015 đến Quầy 3", built
// from short clips, one announcement at a time. A recall is announced again.
// A burst of calls never builds an endless backlog: at most MAX wait, the
// oldest are dropped, and the screen says how many were skipped.
'use strict';
const Voice = (() => {
  const MAX = 4;
  const queue = [];
  let playing = false;
  let skipped = 0;
  const listeners = [];

  // Vietnamese reading of 1..99 for counter numbers ("mười ba", "hai mươi mốt").
  function numberClips(n) {
    const d = (x) => 'd' + x;
    if (n < 10) return [d(n)];
    const tens = Math.floor(n / 10), ones = n % 10;
    const out = tens === 1 ? ['muoi'] : [d(tens), 'muoi2'];
    if (ones === 0) return out;
    if (ones === 1) out.push(tens === 1 ? 'd1' : 'mot2');
    else if (ones === 4 && tens > 1) out.push('tu');
    else if (ones === 5) out.push('lam');
    else out.push(d(ones));
    return out;
  }

  // The clips of one announcement.
  function clips(number, counterName) {
    const out = ['chime', 'moi-so'];
    for (const ch of String(number).toLowerCase()) {
      if (ch >= '0' && ch <= '9') out.push('d' + ch);
      else if (ch >= 'a' && ch <= 'z') out.push('l-' + ch);
    }
    out.push('den');
    const name = String(counterName || '');
    out.push(/^ph[oò]ng/i.test(name) ? 'phong' : 'quay');
    const m = /(\d+)\s*$/.exec(name);
    if (m && +m[1] > 0 && +m[1] < 100) out.push(...numberClips(+m[1]));
    else if (m) for (const ch of m[1]) out.push('d' + ch);
    return out;
  }

  // The player: plays one clip and resolves when it ended. Tests replace it.
  let player = (name) => new Promise((resolve) => {
    const a = new Audio('/voice/' + name + '.wav');
    a.onended = resolve; a.onerror = resolve;
    a.play().catch(resolve);
  });

  async function pump() {
    if (playing) return;
    playing = true;
    while (queue.length) {
      const item = queue.shift();
      notify();
      for (const c of clips(item.number, item.counterName)) await player(c);
    }
    playing = false;
    notify();
  }

  function notify() { for (const f of listeners) f({ waiting: queue.length, skipped: skipped, playing: playing }); }

  function announce(number, counterName) {
    queue.push({ number: number, counterName: counterName });
    while (queue.length > MAX) { queue.shift(); skipped++; }
    notify();
    pump();
  }

  return {
    announce, clips, numberClips,
    onChange: (f) => listeners.push(f),
    setPlayer: (f) => { player = f; },
    state: () => ({ waiting: queue.length, skipped: skipped, playing: playing }),
  };
})();
