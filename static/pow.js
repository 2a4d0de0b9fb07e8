// The join challenge's solver, run in a Web Worker so that the page stays
// responsive: finds a nonce that makes sha256(challenge + ":" + nonce) start
// with `bits` zero bits. SHA-256 is written out here, synchronous: the
// browser's crypto.subtle.digest is asynchronous and costs far more per call
// than one hash, and a solution takes 2^bits hashes on average.
//
// Message in: {challenge, bits}. Messages out: {hashes} now and then (for the
// page's progress), then {nonce, hashes}.
"use strict";

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const INITIAL = new Int32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);
const W = new Int32Array(64);
/// How many hashes between two progress messages.
const REPORT_EVERY = 1 << 15;

/// One SHA-256 block (64 bytes of `bytes` from `at`) into the state `h`.
function compress(h, bytes, at) {
  for (let i = 0; i < 16; i++) {
    const j = at + i * 4;
    W[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
  }
  for (let i = 16; i < 64; i++) {
    const w15 = W[i - 15], w2 = W[i - 2];
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
  }
  let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (k + s1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + k) | 0;
}

/// The first nonce (a decimal counter) whose hash starts with `bits` zero bits.
/// The challenge's whole 64-byte blocks are hashed once; each nonce hashes
/// only the rest of the challenge, ":" and itself.
function solve(challenge, bits) {
  const prefix = new TextEncoder().encode(challenge + ":");
  const whole = prefix.length - (prefix.length % 64);
  const midstate = new Int32Array(INITIAL);
  for (let at = 0; at < whole; at += 64) compress(midstate, prefix, at);
  const rest = prefix.subarray(whole);
  const tail = new Uint8Array(192);
  const h = new Int32Array(8);
  // bits ≤ 32: only the hash's first word decides.
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) | 0;
  for (let n = 0; ; n++) {
    const nonce = String(n);
    tail.fill(0);
    tail.set(rest);
    let at = rest.length;
    for (let i = 0; i < nonce.length; i++) tail[at++] = nonce.charCodeAt(i);
    tail[at++] = 0x80;
    const blocks = at + 8 <= 64 ? 1 : at + 8 <= 128 ? 2 : 3;
    const length = (prefix.length + nonce.length) * 8;
    const end = blocks * 64;
    tail[end - 4] = length >>> 24; tail[end - 3] = length >>> 16;
    tail[end - 2] = length >>> 8; tail[end - 1] = length;
    h.set(midstate);
    for (let b = 0; b < blocks; b++) compress(h, tail, b * 64);
    if ((h[0] & mask) === 0) return { nonce, hashes: n + 1 };
    if ((n + 1) % REPORT_EVERY === 0) postMessage({ hashes: n + 1 });
  }
}

onmessage = (message) => {
  const { challenge, bits } = message.data;
  postMessage(solve(challenge, bits));
};
