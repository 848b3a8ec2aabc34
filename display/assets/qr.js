// qr.js: a QR code (ISO/IEC 18004: byte mode, error correction level M, as
// the kiosk prints, versions 1–10, up to 213 bytes) drawn as an SVG, so the
// booking page can show its own address to a kiosk's scanner with nothing
// fetched from elsewhere. The construction follows Project Nayuki's public
// reference QR code generator, reduced to what a web address needs.
'use strict';
const Qr = (() => {
  // Level M, by version (index 0 unused): error correction codewords per
  // block, number of blocks, centres of the alignment patterns.
  const ECC = [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26];
  const BLOCKS = [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5];
  const ALIGN = [[], [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34],
    [6, 22, 38], [6, 24, 42], [6, 26, 46], [6, 28, 50]];

  // Modules left for data and error correction once the patterns are drawn.
  function rawModules(v) {
    let r = (16 * v + 128) * v + 64;
    if (v >= 2) {
      const n = Math.floor(v / 7) + 2;
      r -= (25 * n - 10) * n - 55;
      if (v >= 7) r -= 36;
    }
    return r;
  }
  const dataCodewords = (v) => Math.floor(rawModules(v) / 8) - ECC[v] * BLOCKS[v];

  // Reed–Solomon over GF(2^8) modulo x^8 + x^4 + x^3 + x^2 + 1.
  function mul(x, y) {
    let z = 0;
    for (let i = 7; i >= 0; i--) {
      z = (z << 1) ^ ((z >>> 7) * 0x11d);
      z ^= ((y >>> i) & 1) * x;
    }
    return z;
  }
  function divisor(degree) {
    const r = new Array(degree).fill(0);
    r[degree - 1] = 1;
    let root = 1;
    for (let i = 0; i < degree; i++) {
      for (let j = 0; j < degree; j++) {
        r[j] = mul(r[j], root);
        if (j + 1 < degree) r[j] ^= r[j + 1];
      }
      root = mul(root, 0x02);
    }
    return r;
  }
  function remainder(data, div) {
    const r = new Array(div.length).fill(0);
    for (const b of data) {
      const f = b ^ r.shift();
      r.push(0);
      div.forEach((c, i) => { r[i] ^= mul(c, f); });
    }
    return r;
  }

  // The codewords of `bytes` in version v, blocks interleaved.
  function codewords(bytes, v) {
    const cap = dataCodewords(v) * 8;
    const bits = [];
    const put = (val, n) => { for (let i = n - 1; i >= 0; i--) bits.push((val >>> i) & 1); };
    put(0b0100, 4);
    put(bytes.length, v < 10 ? 8 : 16);
    for (const b of bytes) put(b, 8);
    put(0, Math.min(4, cap - bits.length));
    put(0, (8 - bits.length % 8) % 8);
    for (let pad = 0xec; bits.length < cap; pad ^= 0xec ^ 0x11) put(pad, 8);
    const data = [];
    for (let i = 0; i < bits.length; i += 8) data.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));

    const nb = BLOCKS[v], ecl = ECC[v], raw = Math.floor(rawModules(v) / 8);
    const short = nb - raw % nb, shortLen = Math.floor(raw / nb);
    const div = divisor(ecl);
    const blocks = [];
    for (let i = 0, k = 0; i < nb; i++) {
      const d = data.slice(k, k + shortLen - ecl + (i < short ? 0 : 1));
      k += d.length;
      const e = remainder(d, div);
      if (i < short) d.push(0);
      blocks.push(d.concat(e));
    }
    const out = [];
    for (let i = 0; i < blocks[0].length; i++) {
      blocks.forEach((b, j) => { if (i !== shortLen - ecl || j >= short) out.push(b[i]); });
    }
    return out;
  }

  const MASKS = [
    (x, y) => (x + y) % 2 === 0,
    (x, y) => y % 2 === 0,
    (x) => x % 3 === 0,
    (x, y) => (x + y) % 3 === 0,
    (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0,
    (x, y) => x * y % 2 + x * y % 3 === 0,
    (x, y) => (x * y % 2 + x * y % 3) % 2 === 0,
    (x, y) => ((x + y) % 2 + x * y % 3) % 2 === 0,
  ];

  // The modules of `text`: rows of booleans, true for dark.
  function matrix(text) {
    const bytes = new TextEncoder().encode(text);
    let v = 1;
    while (v <= 10 && 4 + (v < 10 ? 8 : 16) + 8 * bytes.length > dataCodewords(v) * 8) v++;
    if (v > 10) throw new Error('QR: text too long');
    const size = 4 * v + 17;
    const dark = [], fixed = [];
    for (let y = 0; y < size; y++) { dark.push(new Array(size).fill(false)); fixed.push(new Array(size).fill(false)); }
    const set = (x, y, d) => { dark[y][x] = d; fixed[y][x] = true; };

    for (let i = 0; i < size; i++) { set(6, i, i % 2 === 0); set(i, 6, i % 2 === 0); }
    for (const [cx, cy] of [[3, 3], [size - 4, 3], [3, size - 4]]) {
      for (let dy = -4; dy <= 4; dy++) {
        for (let dx = -4; dx <= 4; dx++) {
          const x = cx + dx, y = cy + dy, dist = Math.max(Math.abs(dx), Math.abs(dy));
          if (x >= 0 && x < size && y >= 0 && y < size) set(x, y, dist !== 2 && dist !== 4);
        }
      }
    }
    const al = ALIGN[v], n = al.length;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if ((i === 0 && j === 0) || (i === 0 && j === n - 1) || (i === n - 1 && j === 0)) continue;
        for (let dy = -2; dy <= 2; dy++) {
          for (let dx = -2; dx <= 2; dx++) set(al[i] + dx, al[j] + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
        }
      }
    }
    // Format information: level M (0b00) and the mask, twice.
    const format = (mask) => {
      const d = mask;
      let r = d;
      for (let i = 0; i < 10; i++) r = (r << 1) ^ ((r >>> 9) * 0x537);
      const b = ((d << 10) | r) ^ 0x5412;
      const bit = (i) => ((b >>> i) & 1) === 1;
      for (let i = 0; i <= 5; i++) set(8, i, bit(i));
      set(8, 7, bit(6)); set(8, 8, bit(7)); set(7, 8, bit(8));
      for (let i = 9; i < 15; i++) set(14 - i, 8, bit(i));
      for (let i = 0; i < 8; i++) set(size - 1 - i, 8, bit(i));
      for (let i = 8; i < 15; i++) set(8, size - 15 + i, bit(i));
      set(8, size - 8, true);
    };
    format(0);
    if (v >= 7) {
      let r = v;
      for (let i = 0; i < 12; i++) r = (r << 1) ^ ((r >>> 11) * 0x1f25);
      const b = (v << 12) | r;
      for (let i = 0; i < 18; i++) {
        const d = ((b >>> i) & 1) === 1, a = size - 11 + i % 3, c = Math.floor(i / 3);
        set(a, c, d); set(c, a, d);
      }
    }

    // Data in two-module columns, upwards and downwards in turn, from the right.
    const cw = codewords(bytes, v);
    let i = 0;
    for (let right = size - 1; right >= 1; right -= 2) {
      if (right === 6) right = 5;
      const up = ((right + 1) & 2) === 0;
      for (let vert = 0; vert < size; vert++) {
        for (let j = 0; j < 2; j++) {
          const x = right - j, y = up ? size - 1 - vert : vert;
          if (!fixed[y][x] && i < cw.length * 8) {
            dark[y][x] = ((cw[i >>> 3] >>> (7 - (i & 7))) & 1) === 1;
            i++;
          }
        }
      }
    }

    const flip = (m) => {
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) if (!fixed[y][x] && MASKS[m](x, y)) dark[y][x] = !dark[y][x];
      }
    };
    // The mask with the fewest features a reader could stumble on.
    const penalty = () => {
      let p = 0, count = 0;
      const line = (get) => {
        let run = 0, prev = null;
        for (let k = 0; k < size; k++) {
          const c = get(k);
          if (c === prev) { run++; if (run === 5) p += 3; else if (run > 5) p += 1; } else { run = 1; prev = c; }
        }
        const light = (k) => k < 0 || k >= size || !get(k);
        for (let k = 0; k + 7 <= size; k++) {
          if (get(k) && !get(k + 1) && get(k + 2) && get(k + 3) && get(k + 4) && !get(k + 5) && get(k + 6) &&
            ([1, 2, 3, 4].every(d => light(k - d)) || [7, 8, 9, 10].every(d => light(k + d)))) p += 40;
        }
      };
      for (let y = 0; y < size; y++) line((x) => dark[y][x]);
      for (let x = 0; x < size; x++) line((y) => dark[y][x]);
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          if (dark[y][x]) count++;
          if (x + 1 < size && y + 1 < size && dark[y][x] === dark[y][x + 1] && dark[y][x] === dark[y + 1][x] &&
            dark[y][x] === dark[y + 1][x + 1]) p += 3;
        }
      }
      const total = size * size;
      return p + (Math.ceil(Math.abs(count * 20 - total * 10) / total) - 1) * 10;
    };
    let best = 0, least = Infinity;
    for (let m = 0; m < 8; m++) {
      flip(m); format(m);
      const p = penalty();
      if (p < least) { least = p; best = m; }
      flip(m);
    }
    flip(best); format(best);
    return dark;
  }

  // An <svg> of `text`, black on white with the standard quiet zone of four
  // modules; it scales to any width.
  function svg(text) {
    const m = matrix(text), q = 4, side = m.length + 2 * q, NS = 'http://www.w3.org/2000/svg';
    let d = '';
    m.forEach((row, y) => row.forEach((on, x) => { if (on) d += 'M' + (x + q) + ' ' + (y + q) + 'h1v1h-1z'; }));
    const s = document.createElementNS(NS, 'svg');
    s.setAttribute('viewBox', '0 0 ' + side + ' ' + side);
    s.setAttribute('shape-rendering', 'crispEdges');
    s.setAttribute('role', 'img');
    const bg = document.createElementNS(NS, 'rect');
    bg.setAttribute('width', side); bg.setAttribute('height', side); bg.setAttribute('fill', '#fff');
    const fg = document.createElementNS(NS, 'path');
    fg.setAttribute('d', d); fg.setAttribute('fill', '#000');
    s.append(bg, fg);
    return s;
  }

  return { matrix, svg };
})();
