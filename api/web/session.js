// Who is signed in (from GET /users/me, through the HttpOnly cookie), their live notification
// stream (GET /users/me/events) and the unread count shown in the header.

import { api, ApiError } from './api.js';
import { h } from './dom.js';

export const session = {
  user: null,
  unread: 0,
  streamState: 'closed',
};

const listeners = new Set();
/** fn(session) on every sign-in, sign-out and unread change; returns an unsubscribe. */
export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
function changed() {
  for (const fn of listeners) fn(session);
}

const notificationListeners = new Set();
/** fn(notification) for each notification that arrives live. */
export function onNotification(fn) {
  notificationListeners.add(fn);
  return () => notificationListeners.delete(fn);
}

export async function loadMe() {
  try {
    const data = await api('GET', '/users/me');
    setUser(data.user);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) console.warn('users/me', err);
    setUser(null);
  }
  return session.user;
}

export async function login(email, password) {
  const data = await api('POST', '/auth/login', { json: { email, password } });
  // The answer carries a bearer token too; it is deliberately dropped: the cookie is the session.
  setUser(data.user);
  return data.user;
}

export async function register(email, password, displayName) {
  await api('POST', '/auth/register', { json: { email, password, displayName } });
  return login(email, password);
}

export async function logout() {
  try {
    await api('POST', '/auth/logout');
  } finally {
    setUser(null);
  }
}

function setUser(user) {
  const before = session.user ? session.user.id : null;
  session.user = user || null;
  if ((user ? user.id : null) !== before) {
    closeStream();
    session.unread = 0;
    if (user) {
      refreshUnread();
      openStream();
    }
  }
  changed();
}

export async function refreshUnread() {
  if (!session.user) return;
  try {
    const data = await api('GET', '/users/me/notifications', { query: { unread: 'true', limit: 100 } });
    session.unread = data.items.length;
    changed();
  } catch {
    /* the badge is a convenience */
  }
}

export function markedRead() {
  session.unread = Math.max(0, session.unread - 1);
  changed();
}

// ---- the user stream ----------------------------------------------------------------------
let source = null;
let retryTimer = null;
let retryDelay = 1000;

function openStream() {
  if (!session.user || source) return;
  // EventSource reconnects by itself after a dropped connection and sends Last-Event-ID, so the
  // server replays what was missed exactly once. It gives up on an HTTP error (401 after a
  // logout elsewhere, 429 over the stream cap): then we reopen after a back-off, fresh.
  source = new EventSource('/api/v1/users/me/events');
  setStreamState('connecting');
  source.addEventListener('open', () => {
    retryDelay = 1000;
    setStreamState('live');
  });
  source.addEventListener('ready', () => setStreamState('live'));
  source.addEventListener('notification', (ev) => {
    let n;
    try {
      n = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (!n.readAt) session.unread += 1;
    changed();
    toast(n);
    for (const fn of notificationListeners) fn(n);
  });
  source.addEventListener('resync', () => refreshUnread());
  source.addEventListener('error', () => {
    if (!source) return;
    if (source.readyState === EventSource.CLOSED) {
      source = null;
      setStreamState('closed');
      clearTimeout(retryTimer);
      retryTimer = setTimeout(async () => {
        retryDelay = Math.min(retryDelay * 2, 30000);
        // Still signed in? (a logout or a ban through another node ends the stream)
        await loadMe();
        if (session.user) openStream();
      }, retryDelay);
    } else {
      setStreamState('reconnecting');
    }
  });
}

function closeStream() {
  clearTimeout(retryTimer);
  if (source) {
    source.close();
    source = null;
  }
  setStreamState('closed');
}

function setStreamState(state) {
  session.streamState = state;
  document.documentElement.dataset.userStream = state;
}

// ---- toasts -------------------------------------------------------------------------------
const TOAST_TITLES = {
  outbid: 'You were outbid',
  new_bid: 'New bid',
  auction_extended: 'Auction extended',
  auction_won: 'You won',
  auction_lost: 'Auction lost',
  auction_sold: 'Sold',
  auction_unsold: 'Ended unsold',
  auction_cancelled: 'Auction cancelled',
};

export function toast(n) {
  const region = document.getElementById('toasts');
  if (!region) return;
  const item = h('div', { class: `toast toast-${n.type}`, 'data-testid': 'toast', 'data-type': n.type },
    h('strong', null, TOAST_TITLES[n.type] || 'Notification'),
    ' ',
    h('span', null, n.message || ''),
    ' ',
    n.auctionId ? h('a', { href: `#/auction/${n.auctionId}` }, 'View') : null,
    h('button', {
      type: 'button',
      class: 'toast-close',
      'aria-label': 'Dismiss notification',
      onclick: () => item.remove(),
    }, '×'));
  region.appendChild(item);
  while (region.children.length > 4) region.firstElementChild.remove();
  setTimeout(() => item.remove(), 12000);
}
