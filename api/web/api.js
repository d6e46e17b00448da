// The JSON API client: same-origin fetch (the HttpOnly session cookie rides along; the token in
// the login answer is never stored), errors as ApiError, and the server clock.

import { formatMoney } from './format.js';

const BASE = '/api/v1';

export class ApiError extends Error {
  constructor(status, body, retryAfterHeader) {
    const data = body && typeof body === 'object' ? body : {};
    super(data.message || `request failed with HTTP ${status}`);
    this.status = status;
    this.code = data.error || (status === 0 ? 'NETWORK' : `HTTP_${status}`);
    this.details = data;
    const retry = Number(data.retryAfter ?? retryAfterHeader);
    this.retryAfter = Number.isFinite(retry) && retry > 0 ? retry : null;
    this.field = data.field || null;
  }
}

// ---- server time ------------------------------------------------------------------------
// offset = serverTime - local monotonic clock at receipt. performance.now() never jumps when
// the wall clock is set, so serverNow() is right however wrong (or changing) Date.now() is.
let clockOffset = null;
const clockListeners = new Set();

export function sampleServerTime(iso) {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return;
  clockOffset = ms - performance.now();
  for (const fn of clockListeners) fn();
}

/** Milliseconds since the epoch on the server's clock (the local clock until a first answer). */
export function serverNow() {
  return clockOffset === null ? Date.now() : performance.now() + clockOffset;
}

export function hasServerTime() {
  return clockOffset !== null;
}

/** Estimated local-minus-server clock difference in ms (for the footer). */
export function clockSkewMs() {
  return clockOffset === null ? 0 : Date.now() - serverNow();
}

export function onClock(fn) {
  clockListeners.add(fn);
  return () => clockListeners.delete(fn);
}

function sampleFrom(data) {
  if (!data || typeof data !== 'object') return;
  if (typeof data.serverTime === 'string') sampleServerTime(data.serverTime);
  else if (data.auction && typeof data.auction.serverTime === 'string') sampleServerTime(data.auction.serverTime);
}

// ---- requests ---------------------------------------------------------------------------

/** A fresh idempotency key (works outside secure contexts too). */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === null || v === undefined || v === '') continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * api('GET', '/auctions', {query}) / api('POST', '/auctions', {json}) / {raw: File}.
 * Resolves with the parsed JSON (null for 204), rejects with ApiError.
 */
export async function api(method, path, opts = {}) {
  const headers = { Accept: 'application/json', ...(opts.headers || {}) };
  let body;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.raw !== undefined) {
    body = opts.raw;
    if (opts.raw instanceof Blob && opts.raw.type) headers['Content-Type'] = opts.raw.type;
  }
  if (opts.key) headers['X-Idempotency-Key'] = opts.key;
  let response;
  try {
    response = await fetch(BASE + path + qs(opts.query), {
      method,
      headers,
      body,
      credentials: 'same-origin',
      cache: 'no-store',
      signal: opts.signal,
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, { error: 'NETWORK', message: 'the server could not be reached' });
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text.slice(0, 200) };
    }
  }
  if (!response.ok) throw new ApiError(response.status, data, response.headers.get('Retry-After'));
  sampleFrom(data);
  return data;
}

/**
 * A sentence for a refusal, naming what the API said (minimum bid, wait, field...).
 * `context` is 'bid', 'proxy', 'buy', 'login' or undefined.
 */
export function errorText(err, context) {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err && err.message ? err.message : err}`;
  const d = err.details || {};
  const wait = err.retryAfter ? `${err.retryAfter} s` : 'a moment';
  switch (err.code) {
    case 'BID_TOO_LOW':
      if (d.minimumBid) {
        return `Your ${context === 'proxy' ? 'maximum' : 'bid'} is too low: the minimum bid is ${formatMoney(d.minimumBid)}.`;
      }
      if (d.currentMax) return `Your new maximum must be above your current maximum of ${formatMoney(d.currentMax)}.`;
      return `Your bid is too low. ${err.message}`;
    case 'INVALID_AMOUNT':
      return 'Enter an amount such as 55.00 (at most two decimals).';
    case 'AUCTION_ENDED':
      return 'This auction has ended: no more bids are taken.';
    case 'AUCTION_NOT_STARTED':
      return 'This auction has not started yet.';
    case 'AUCTION_CANCELLED':
      return 'This auction was cancelled.';
    case 'ALREADY_HIGH_BIDDER':
      return 'You are already the high bidder. To go higher, raise your maximum with a proxy bid.';
    case 'SELLER_CANNOT_BID':
      return 'You cannot bid on your own auction.';
    case 'USER_BANNED':
      return 'Your account is banned.';
    case 'BUY_NOW_UNAVAILABLE':
      return 'Buy now is not available any more for this auction.';
    case 'AUCTION_HAS_BIDS':
      return 'The auction has bids: it can no longer be changed.';
    case 'AUCTION_NOT_FOUND':
      return 'This auction does not exist.';
    case 'RATE_LIMITED':
      if (context === 'login') return `Too many sign-in attempts: wait ${wait} and try again.`;
      if (context === 'bid' || context === 'proxy' || context === 'buy') {
        return `Too many bids in a minute: you can bid again in ${wait}.`;
      }
      return `Too many requests: wait ${wait} and try again.`;
    case 'UNAUTHORIZED':
      if (context === 'login') return 'Wrong email or password.';
      return 'Please sign in first.';
    case 'FORBIDDEN':
      return 'You are not allowed to do that.';
    case 'EMAIL_TAKEN':
      return 'This email address is already registered: sign in instead.';
    case 'VALIDATION_FAILED':
      return err.field && err.field !== 'image' && err.field !== 'body' ? `${err.field}: ${err.message}` : err.message;
    case 'PAYLOAD_TOO_LARGE':
      return `Too large${d.limitBytes ? ` (at most ${Math.round(d.limitBytes / 1024)} KiB)` : ''}.`;
    case 'NO_LEADER':
    case 'UNAVAILABLE':
    case 'IMAGE_STORE_UNAVAILABLE':
    case 'IMAGE_PROCESSING_BUSY':
    case 'SEARCH_UNAVAILABLE':
      return `${err.message || 'The cluster cannot answer right now'}. Nothing was done; try again in ${wait}.`;
    case 'TIMEOUT':
      return 'No answer in time: the outcome is unknown. Check the bid history before trying again.';
    case 'NETWORK':
      return 'The server could not be reached. Check your connection and try again.';
    default:
      return err.message || `Request failed (HTTP ${err.status}).`;
  }
}

/** A short label for a user id: "you" for the signed-in user, else "bidder 1a2b3c4d". */
export function who(id, me, noun = 'bidder') {
  if (!id) return '—';
  if (me && me.id === id) return 'you';
  return `${noun} ${String(id).slice(0, 8)}`;
}
