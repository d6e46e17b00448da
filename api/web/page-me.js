// The signed-in user's lists: my bids (winning / outbid / won / lost), my auctions, the
// watchlist and the notifications (live through the user stream).

import { api, errorText, serverNow } from './api.js';
import { h, messageBox } from './dom.js';
import { formatMoney, formatWhen } from './format.js';
import { session, onNotification, markedRead } from './session.js';
import { auctionCard, cardTicker, tickCards } from './cards.js';

function needLogin(title, testid, path) {
  return {
    title,
    node: h('section', { 'data-testid': testid },
      h('h1', null, title),
      h('p', null, h('a', { href: `#/login?return=${encodeURIComponent(path)}`, id: 'me-sign-in' }, 'Sign in'), ' to see this page.')),
  };
}

/**
 * A paged list: load(cursor) -> {items, nextCursor}; item(x) -> <li>. Returns {node, cleanup,
 * prepend}.
 */
function pagedList({ id, load, item, empty, listClass = 'cards' }) {
  const list = h('ul', { class: listClass, id, 'data-testid': id });
  const msg = messageBox(`${id}-error`);
  const emptyNote = h('p', { class: 'muted', id: `${id}-empty` }, empty);
  emptyNote.hidden = true;
  const more = h('button', { type: 'button', class: 'load-more', id: `${id}-more` }, 'Load more');
  more.hidden = true;
  let cursor = null;
  let closed = false;
  async function page(first) {
    more.disabled = true;
    try {
      const data = await load(first ? null : cursor);
      if (closed) return;
      for (const x of data.items) list.appendChild(item(x));
      tickCards(list);
      cursor = data.nextCursor;
      more.hidden = !cursor;
      emptyNote.hidden = list.children.length > 0;
    } catch (err) {
      if (!closed) msg.error(errorText(err));
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', () => page(false));
  page(true);
  const stop = cardTicker(list);
  return {
    node: h('div', null, msg.el, emptyNote, list, more),
    list,
    cleanup() {
      closed = true;
      stop();
    },
    prepend(el) {
      list.insertBefore(el, list.firstChild);
      emptyNote.hidden = true;
    },
  };
}

const MY_STATUS = { winning: 'Winning', outbid: 'Outbid', won: 'Won', lost: 'Lost' };

export function myBidsPage({ query }) {
  if (!session.user) return needLogin('My bids', 'my-bids-page', '/me/bids');
  const filter = query.get('status') || '';
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Filter my bids' },
    h('ul', null, [['', 'All'], ['winning', 'Winning'], ['outbid', 'Outbid'], ['won', 'Won'], ['lost', 'Lost']].map(([v, label]) => h('li', null,
      h('a', {
        href: v ? `#/me/bids?status=${v}` : '#/me/bids',
        id: `my-bids-tab-${v || 'all'}`,
        'aria-current': v === filter ? 'page' : null,
      }, label)))));
  const pl = pagedList({
    id: 'my-bids',
    empty: filter ? `No auctions where you are ${MY_STATUS[filter].toLowerCase()}.` : 'You have not bid yet.',
    load: (cursor) => api('GET', '/users/me/bids', { query: { status: filter, cursor, limit: 20 } }),
    item: (x) => auctionCard(x.auction, h('p', { class: 'card-extra' },
      h('span', { class: `my-bid-status my-status-${x.myStatus}`, 'data-testid': 'my-bid-status', 'data-status': x.myStatus }, MY_STATUS[x.myStatus] || x.myStatus),
      x.myMaximum ? h('span', { class: 'muted' }, ` your maximum ${formatMoney(x.myMaximum)}`) : null)),
  });
  return {
    title: 'My bids',
    node: h('section', { 'data-testid': 'my-bids-page' }, h('h1', null, 'My bids'), tabs, pl.node),
    cleanup: pl.cleanup,
  };
}

export function myAuctionsPage() {
  if (!session.user) return needLogin('My auctions', 'my-auctions-page', '/me/auctions');
  const pl = pagedList({
    id: 'my-auctions',
    empty: 'You are not selling anything yet.',
    load: (cursor) => api('GET', '/users/me/auctions', { query: { cursor, limit: 20 } }),
    item: (a) => auctionCard(a, a.bidCount === 0 && (a.status === 'active' || a.status === 'scheduled')
      ? h('p', { class: 'card-extra' }, h('a', { href: `#/auction/${a.id}/images` }, 'Manage photos'))
      : null),
  });
  return {
    title: 'My auctions',
    node: h('section', { 'data-testid': 'my-auctions-page' },
      h('h1', null, 'My auctions'),
      h('p', null, h('a', { href: '#/sell', class: 'button-link', id: 'sell-link' }, 'Sell an item')),
      pl.node),
    cleanup: pl.cleanup,
  };
}

export function watchlistPage() {
  if (!session.user) return needLogin('Watchlist', 'watchlist-page', '/me/watchlist');
  const pl = pagedList({
    id: 'watchlist',
    empty: 'You are not watching any auction. Use “Watch” on an auction to follow it here.',
    load: (cursor) => api('GET', '/users/me/watchlist', { query: { cursor, limit: 20 } }),
    item: (w) => {
      const remove = h('button', { type: 'button', class: 'link-button', 'data-testid': 'unwatch' }, 'Unwatch');
      const card = w.auction
        ? auctionCard(w.auction, h('p', { class: 'card-extra' }, remove))
        : h('li', { class: 'card' }, h('a', { href: `#/auction/${w.auctionId}` }, 'Auction'), ' ', remove);
      remove.setAttribute('aria-label', `Stop watching ${w.auction ? w.auction.title : 'this auction'}`);
      remove.addEventListener('click', async () => {
        remove.disabled = true;
        try {
          await api('DELETE', `/users/me/watchlist/${w.auctionId}`);
          card.remove();
        } catch (err) {
          remove.disabled = false;
          remove.textContent = `Unwatch (failed: ${errorText(err)})`;
        }
      });
      return card;
    },
  });
  return {
    title: 'Watchlist',
    node: h('section', { 'data-testid': 'watchlist-page' }, h('h1', null, 'Watchlist'), pl.node),
    cleanup: pl.cleanup,
  };
}

const TYPE_LABELS = {
  outbid: 'Outbid',
  new_bid: 'New bid',
  auction_extended: 'Extended',
  auction_won: 'Won',
  auction_lost: 'Lost',
  auction_sold: 'Sold',
  auction_unsold: 'Unsold',
  auction_cancelled: 'Cancelled',
};

function notificationItem(n) {
  const read = h('button', { type: 'button', class: 'link-button', 'data-testid': 'mark-read' }, 'Mark as read');
  const li = h('li', {
    class: `notification${n.readAt ? '' : ' unread'}`,
    'data-testid': 'notification',
    'data-type': n.type,
    'data-id': n.id,
  },
  h('span', { class: `tag tag-${n.type}` }, TYPE_LABELS[n.type] || n.type),
  ' ',
  h('span', { class: 'notification-message' }, n.message),
  ' ',
  h('time', { datetime: n.createdAt, class: 'muted' }, formatWhen(n.createdAt, serverNow())),
  ' ',
  n.auctionId ? h('a', { href: `#/auction/${n.auctionId}` }, 'View auction') : null,
  ' ',
  n.readAt ? null : read);
  read.addEventListener('click', async () => {
    read.disabled = true;
    try {
      await api('POST', `/users/me/notifications/${n.id}/read`);
      li.classList.remove('unread');
      read.remove();
      markedRead();
    } catch (err) {
      read.disabled = false;
      read.textContent = `Mark as read (failed: ${errorText(err)})`;
    }
  });
  return li;
}

export function notificationsPage({ query }) {
  if (!session.user) return needLogin('Notifications', 'notifications-page', '/me/notifications');
  const unread = query.get('unread') === 'true';
  const pl = pagedList({
    id: 'notifications',
    empty: unread ? 'No unread notifications.' : 'No notifications yet.',
    load: (cursor) => api('GET', '/users/me/notifications', { query: { unread: unread ? 'true' : null, cursor, limit: 20 } }),
    item: notificationItem,
    listClass: 'notification-list',
  });
  const stopLive = onNotification((n) => {
    if (pl.list.querySelector(`[data-id="${CSS.escape(n.id)}"]`)) return;
    pl.prepend(notificationItem(n));
  });
  const live = h('p', { class: 'muted', id: 'notifications-live' }, 'New notifications appear here as they happen.');
  return {
    title: 'Notifications',
    node: h('section', { 'data-testid': 'notifications-page' },
      h('h1', null, 'Notifications'),
      h('nav', { class: 'tabs', 'aria-label': 'Filter notifications' }, h('ul', null,
        h('li', null, h('a', { href: '#/me/notifications', 'aria-current': unread ? null : 'page' }, 'All')),
        h('li', null, h('a', { href: '#/me/notifications?unread=true', 'aria-current': unread ? 'page' : null }, 'Unread')))),
      live, pl.node),
    cleanup() {
      stopLive();
      pl.cleanup();
    },
  };
}
