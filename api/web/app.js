// The web app: hash routes (#/..., so the server only serves /), a header that follows the
// session, one page at a time with its own clean-up (event streams, timers).

import { h, replace } from './dom.js';
import { session, onSession, loadMe, logout } from './session.js';
import { clockSkewMs, hasServerTime, onClock } from './api.js';
import { listingsPage } from './page-listings.js';
import { auctionPage } from './page-auction.js';
import { loginPage, registerPage } from './page-auth.js';
import { createPage } from './page-create.js';
import { imagesPage } from './page-images.js';
import { myBidsPage, myAuctionsPage, watchlistPage, notificationsPage } from './page-me.js';

const UUID = '([0-9a-fA-F-]{36})';
const ROUTES = [
  [/^\/$/, listingsPage],
  [new RegExp(`^/auction/${UUID}$`), auctionPage],
  [new RegExp(`^/auction/${UUID}/images$`), imagesPage],
  [/^\/login$/, loginPage],
  [/^\/register$/, registerPage],
  [/^\/sell$/, createPage],
  [/^\/me\/bids$/, myBidsPage],
  [/^\/me\/auctions$/, myAuctionsPage],
  [/^\/me\/watchlist$/, watchlistPage],
  [/^\/me\/notifications$/, notificationsPage],
];

/** The current route: {path, params: [...], query: URLSearchParams}. */
export function currentRoute() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, search] = raw.split('?');
  return { path: path || '/', query: new URLSearchParams(search || '') };
}

/** Goes to a hash route ("/auction/ID"); with `replace` the history entry is replaced. */
export function navigate(path, { replace: replaceEntry = false } = {}) {
  const hash = `#${path}`;
  if (location.hash === hash) {
    render();
  } else if (replaceEntry) {
    history.replaceState(null, '', hash);
    render();
  } else {
    location.hash = hash;
  }
}

let current = null; // {cleanup}
let firstRender = true;

function notFound() {
  return {
    title: 'Not found',
    node: h('section', { 'data-testid': 'not-found-page' },
      h('h1', { tabindex: '-1' }, 'Page not found'),
      h('p', null, 'There is nothing at this address. ', h('a', { href: '#/' }, 'Browse auctions'), '.')),
  };
}

async function render() {
  const main = document.getElementById('main');
  if (current && current.cleanup) {
    try {
      current.cleanup();
    } catch (err) {
      console.warn('cleanup', err);
    }
  }
  current = null;
  const { path, query } = currentRoute();
  let page = notFound;
  let params = [];
  for (const [re, fn] of ROUTES) {
    const m = re.exec(path);
    if (m) {
      page = fn;
      params = m.slice(1);
      break;
    }
  }
  const token = {};
  current = token;
  let view;
  try {
    view = page({ params, query, navigate });
  } catch (err) {
    console.error(err);
    view = { title: 'Error', node: h('p', { role: 'alert' }, `This page failed: ${err.message}`) };
  }
  if (current !== token) return; // a newer navigation won
  current = view;
  replace(main, view.node);
  renderNav(); // the sign-in link carries the page to come back to
  document.title = view.title ? `${view.title} · Auctions` : 'Auctions';
  markNav(path);
  // Focus order: after a navigation, focus goes to the page's heading (screen readers announce
  // the new page); the first load leaves focus at the top of the document.
  if (!firstRender) {
    const heading = main.querySelector('h1');
    if (heading) {
      if (!heading.hasAttribute('tabindex')) heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: false });
    }
    window.scrollTo(0, 0);
  }
  firstRender = false;
}

// ---- header -------------------------------------------------------------------------------
function navLink(href, text, id, extra) {
  return h('a', { href, id, 'data-nav': href }, text, extra || null);
}

let navKey = null;
function renderNav() {
  const nav = document.getElementById('site-nav');
  const user = session.user;
  // Rebuilt only when what it shows changes (a rebuild would drop focus from a header link).
  const key = JSON.stringify([user && user.id, user && user.displayName, session.unread, returnTo()]);
  if (key === navKey) return;
  navKey = key;
  const links = [navLink('#/', 'Browse', 'nav-browse')];
  if (user) {
    const badge = session.unread > 0
      ? h('span', { class: 'badge', id: 'unread-count', 'data-testid': 'unread-count', 'aria-label': `${session.unread} unread` },
        String(session.unread))
      : null;
    links.push(
      navLink('#/sell', 'Sell', 'nav-sell'),
      navLink('#/me/bids', 'My bids', 'nav-my-bids'),
      navLink('#/me/auctions', 'My auctions', 'nav-my-auctions'),
      navLink('#/me/watchlist', 'Watchlist', 'nav-watchlist'),
      navLink('#/me/notifications', 'Notifications', 'nav-notifications', badge),
    );
  }
  const account = user
    ? h('div', { class: 'account' },
      h('span', { class: 'who', id: 'current-user', 'data-testid': 'current-user', 'data-user-id': user.id },
        user.displayName),
      h('button', {
        type: 'button',
        id: 'logout-button',
        class: 'link-button',
        onclick: async () => {
          await logout().catch(() => {});
          navigate('/');
        },
      }, 'Sign out'))
    : h('div', { class: 'account' },
      navLink(`#/login${returnTo()}`, 'Sign in', 'nav-login'),
      navLink('#/register', 'Register', 'nav-register'));
  replace(nav, h('ul', { class: 'nav-links' }, links.map((a) => h('li', null, a))), account);
  markNav(currentRoute().path);
}

function returnTo() {
  const { path } = currentRoute();
  if (path === '/login' || path === '/register' || path === '/') return '';
  return `?return=${encodeURIComponent(path)}`;
}

function markNav(path) {
  for (const a of document.querySelectorAll('#site-nav a[data-nav]')) {
    const target = a.dataset.nav.replace(/^#/, '').split('?')[0];
    if (target === path) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function renderFooter() {
  const info = document.getElementById('node-info');
  if (!info) return;
  const skew = clockSkewMs();
  const text = hasServerTime() && Math.abs(skew) > 2000
    ? `Your clock is ${Math.round(Math.abs(skew) / 1000)} s ${skew > 0 ? 'ahead of' : 'behind'} the server's; times shown use the server's. `
    : '';
  info.textContent = `${text}Served by ${location.host}.`;
}

// ---- start --------------------------------------------------------------------------------
async function start() {
  document.getElementById('skip-link').addEventListener('click', (ev) => {
    ev.preventDefault(); // not a route: the hash is the router's
    document.getElementById('main').focus();
  });
  onSession(() => renderNav());
  onClock(renderFooter);
  renderNav();
  renderFooter();
  await loadMe();
  window.addEventListener('hashchange', render);
  await render();
  document.documentElement.dataset.appReady = 'true';
}

start();
