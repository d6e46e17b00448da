// An auction as a list item (listings, my bids, my auctions, watchlist), with a countdown that
// one shared timer keeps current on server time.

import { h, setText } from './dom.js';
import { serverNow } from './api.js';
import { formatMoney, formatRemaining, formatDateTime, STATUS_LABELS, isOpen } from './format.js';

/** extra: nodes appended to the card (a status badge, a button). */
export function auctionCard(a, extra) {
  const price = a.currentPrice
    ? h('span', { class: 'card-price', 'data-testid': 'card-price' }, formatMoney(a.currentPrice))
    : h('span', { class: 'card-price', 'data-testid': 'card-price' }, formatMoney(a.startingPrice), h('span', { class: 'muted' }, ' start'));
  const countdown = h('span', {
    class: 'card-countdown',
    'data-end-time': a.endTime,
    'data-start-time': a.startTime,
    'data-status': a.status,
  });
  // Listings and search carry `cover`, the first photo's thumbnail (decorative: the title says it).
  const cover = a.cover && a.cover.url
    ? h('img', { class: 'card-cover', src: a.cover.url, alt: '', width: a.cover.width, height: a.cover.height, loading: 'lazy', 'data-testid': 'card-cover' })
    : h('div', { class: 'card-cover none', 'aria-hidden': 'true' });
  return h('li', { class: 'card', 'data-testid': 'auction-card', 'data-auction-id': a.id },
    h('a', { class: 'card-cover-link', href: `#/auction/${a.id}`, tabindex: '-1', 'aria-hidden': 'true' }, cover),
    h('div', { class: 'card-body' },
      h('h3', { class: 'card-title' }, h('a', { href: `#/auction/${a.id}`, 'data-testid': 'auction-link' }, a.title)),
    h('p', { class: 'card-meta' },
      price,
      h('span', { class: 'card-bids' }, `${a.bidCount} bid${a.bidCount === 1 ? '' : 's'}`),
      h('span', { class: `status-pill small`, 'data-status': a.status }, STATUS_LABELS[a.status] || a.status),
      a.category ? h('span', { class: 'category' }, a.category) : null),
      h('p', { class: 'card-time' }, countdown),
      extra || null));
}

/** Updates every card countdown under `root`. */
export function tickCards(root) {
  const now = serverNow();
  for (const el of root.querySelectorAll('.card-countdown')) {
    const status = el.dataset.status;
    const end = Date.parse(el.dataset.endTime);
    const start = Date.parse(el.dataset.startTime);
    if (status === 'scheduled' && now < start) setText(el, `Starts in ${formatRemaining(start - now)}`);
    else if (isOpen(status)) {
      const left = end - now;
      setText(el, left > 0 ? `Ends in ${formatRemaining(left)}` : 'Ending…');
      el.classList.toggle('ending-soon', left > 0 && left < 60000);
    } else setText(el, `Ended ${formatDateTime(el.dataset.endTime)}`);
  }
}

/** Starts a 1 s ticker for the cards under root; returns a stop function. */
export function cardTicker(root) {
  tickCards(root);
  const t = setInterval(() => tickCards(root), 1000);
  return () => clearInterval(t);
}
