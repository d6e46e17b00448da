// One auction, live: GET /auctions/{id}, then its event stream (snapshot, bid_placed,
// auction_extended, auction_ended; EventSource resumes with Last-Event-ID by itself), a
// countdown on server time, the bid / proxy / buy-now forms and watch / unwatch.

import { api, ApiError, errorText, newKey, serverNow, sampleServerTime, who } from './api.js';
import { h, replace, setText, messageBox } from './dom.js';
import {
  toCents, fromCents, formatMoney, minimumBid, formatRemaining, formatWhen, formatDateTime,
  STATUS_LABELS, isOpen,
} from './format.js';
import { session } from './session.js';

export function auctionPage({ params }) {
  const id = params[0].toLowerCase();
  const root = h('article', { class: 'auction-page', 'data-testid': 'auction-page', 'data-auction-id': id },
    h('p', { class: 'back' }, h('a', { href: '#/' }, '← All auctions')),
    h('h1', { id: 'auction-title', tabindex: '-1' }, 'Loading auction…'));
  const page = new AuctionView(id, root);
  page.load();
  return { title: 'Auction', node: root, cleanup: () => page.close() };
}

class AuctionView {
  constructor(id, root) {
    this.id = id;
    this.root = root;
    this.auction = null;
    this.history = new Map(); // sequence -> bid
    this.source = null;
    this.timers = [];
    this.closed = false;
    this.snapshots = 0;
    this.iBid = false;
    this.watched = null;
    this.refreshTimer = null;
    this.lastEndingPoll = 0;
    this.el = {};
  }

  close() {
    this.closed = true;
    if (this.source) this.source.close();
    this.source = null;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.refreshTimer);
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.rateTimer);
  }

  get me() {
    return session.user;
  }

  async load() {
    try {
      const data = await api('GET', `/auctions/${this.id}`);
      if (this.closed) return;
      this.auction = data.auction;
    } catch (err) {
      if (this.closed) return;
      const title = this.root.querySelector('h1');
      title.textContent = err instanceof ApiError && err.status === 404 ? 'Auction not found' : 'This auction could not be loaded';
      this.root.appendChild(h('p', { role: 'alert', 'data-testid': 'auction-error' }, errorText(err)));
      return;
    }
    document.title = `${this.auction.title} · Auctions`;
    this.build();
    this.update();
    this.connect();
    this.loadHistory();
    this.loadWatched();
    this.timers.push(setInterval(() => this.tick(), 200));
  }

  // ---- layout -------------------------------------------------------------------------
  build() {
    const a = this.auction;
    const el = this.el;
    const title = this.root.querySelector('h1');
    title.textContent = a.title;

    el.status = h('span', { id: 'auction-status', class: 'status-pill', 'data-testid': 'auction-status' });
    el.category = h('span', { class: 'category', id: 'auction-category' });
    el.price = h('strong', { id: 'current-price', class: 'price', 'data-testid': 'current-price' });
    el.priceLabel = h('span', { class: 'price-label', id: 'price-label' });
    el.minimum = h('dd', { id: 'minimum-bid', 'data-testid': 'minimum-bid' });
    el.bidCount = h('dd', { id: 'bid-count', 'data-testid': 'bid-count' });
    el.reserve = h('dd', { id: 'reserve-status', 'data-testid': 'reserve-status' });
    el.highBidder = h('dd', { id: 'high-bidder', 'data-testid': 'high-bidder' });
    el.buyNowPrice = h('dd', { id: 'buy-now-price' });
    el.seller = h('dd', { id: 'seller' });
    el.countdownLabel = h('span', { class: 'countdown-label', id: 'countdown-label' }, 'Ends in');
    el.countdown = h('span', {
      id: 'countdown', class: 'countdown', 'data-testid': 'countdown', role: 'timer', 'aria-atomic': 'true',
      'aria-labelledby': 'countdown-label countdown',
    });
    el.endTime = h('time', { id: 'end-time', 'data-testid': 'end-time' });
    el.extended = h('p', { id: 'extension-notice', class: 'extension-notice', 'data-testid': 'extension-notice' });
    el.extended.hidden = true;
    el.endBanner = h('p', { id: 'end-banner', class: 'end-banner', 'data-testid': 'end-banner' });
    el.endBanner.hidden = true;
    el.myStatus = h('p', { id: 'my-status', class: 'my-status', 'data-testid': 'my-status' });
    el.myStatus.hidden = true;
    // One polite live region says what changed (price, extension, end) in words; the visual
    // countdown itself is a timer, not announced every second.
    el.announce = h('p', { id: 'auction-announcer', class: 'visually-hidden', 'aria-live': 'polite', 'aria-atomic': 'true' });
    el.stream = h('p', { id: 'stream-state', class: 'stream-state', 'data-testid': 'stream-state', 'data-state': 'connecting' },
      'Connecting…');

    el.actions = h('div', { id: 'auction-actions', class: 'actions' });
    el.gallery = h('section', { class: 'gallery', id: 'gallery', 'data-testid': 'gallery', 'aria-label': 'Photos' });
    el.history = h('ol', { id: 'bid-history', class: 'bid-history', 'data-testid': 'bid-history', reversed: true });
    el.historyEmpty = h('p', { id: 'bid-history-empty', class: 'muted' }, 'Loading the bid history…');

    const summary = h('section', { class: 'panel summary', 'aria-labelledby': 'price-label' },
      h('div', { class: 'summary-top' }, el.status, el.category),
      h('p', { class: 'price-line' }, el.priceLabel, ' ', h('span', { 'aria-live': 'polite', 'aria-atomic': 'true', id: 'price-live' }, el.price)),
      h('div', { class: 'countdown-box', id: 'countdown-box' },
        el.countdownLabel, ' ', el.countdown,
        h('span', { class: 'end-line' }, el.endLabel = h('span', null, 'Ends at '), el.endTime)),
      el.extended,
      el.endBanner,
      el.myStatus,
      h('dl', { class: 'facts' },
        h('dt', null, 'Minimum bid'), el.minimum,
        h('dt', null, 'Bids'), el.bidCount,
        h('dt', null, 'Reserve'), el.reserve,
        h('dt', null, 'High bidder'), el.highBidder,
        h('dt', { id: 'buy-now-term' }, 'Buy now'), el.buyNowPrice,
        h('dt', null, 'Seller'), el.seller),
      el.actions,
      el.stream,
      el.announce);

    const description = h('section', { class: 'panel description' },
      h('h2', null, 'Description'),
      a.description
        ? h('p', { id: 'auction-description', class: 'pre-wrap', 'data-testid': 'auction-description' }, a.description)
        : h('p', { id: 'auction-description', class: 'muted' }, 'No description.'));
    const history = h('section', { class: 'panel history', 'aria-labelledby': 'history-heading' },
      h('h2', { id: 'history-heading' }, 'Bid history'),
      el.historyEmpty,
      el.history);

    // Two columns on a wide screen; on a phone the columns dissolve (display: contents) and
    // the order is photos, price and forms, description, history.
    this.root.appendChild(h('div', { class: 'auction-layout' },
      h('div', { class: 'auction-media' }, el.gallery, description),
      h('div', { class: 'auction-side' }, summary, history)));
    this.renderGallery();
    this.renderActions();
  }

  renderGallery() {
    const a = this.auction;
    const images = a.images || [];
    const gallery = this.el.gallery;
    if (images.length === 0) {
      replace(gallery, h('div', { class: 'no-photo', id: 'no-photos' }, 'No photos'));
      return;
    }
    const main = h('img', {
      id: 'main-image',
      class: 'main-image',
      'data-testid': 'main-image',
      src: images[0].url,
      alt: `Photo 1 of ${images.length}: ${a.title}`,
      width: images[0].width,
      height: images[0].height,
    });
    const thumbs = images.length > 1
      ? h('ul', { class: 'thumbs', id: 'thumbs' }, images.map((img, i) => h('li', null,
        h('button', {
          type: 'button',
          class: 'thumb',
          'aria-label': `Show photo ${i + 1} of ${images.length}`,
          'aria-pressed': i === 0 ? 'true' : 'false',
          onclick: (ev) => {
            main.src = img.url;
            main.width = img.width;
            main.height = img.height;
            main.alt = `Photo ${i + 1} of ${images.length}: ${a.title}`;
            for (const b of thumbs.querySelectorAll('button')) b.setAttribute('aria-pressed', 'false');
            ev.currentTarget.setAttribute('aria-pressed', 'true');
          },
        }, h('img', {
          src: img.thumbnailUrl, alt: '', width: img.thumbnailWidth, height: img.thumbnailHeight,
          'data-testid': 'thumbnail', loading: 'lazy',
        })))))
      : null;
    replace(gallery, h('figure', { class: 'main-figure' }, main), thumbs);
  }

  /** The forms, or why there are none. Rebuilt when who / status changes. */
  renderActions() {
    const a = this.auction;
    const me = this.me;
    const box = this.el.actions;
    const key = `${me ? me.id : ''}|${isOpen(a.status)}`;
    if (this.actionsKey === key) return;
    this.actionsKey = key;
    box.replaceChildren();
    this.el.buyNowBox = null;
    this.el.bidInput = null;
    this.el.bidHint = null;
    this.el.watch = null;
    if (!isOpen(a.status)) return;
    if (!me) {
      box.appendChild(h('p', { class: 'sign-in-to-bid', id: 'sign-in-to-bid' },
        h('a', { href: `#/login?return=${encodeURIComponent(`/auction/${this.id}`)}`, id: 'sign-in-to-bid-link' }, 'Sign in'),
        ' or ',
        h('a', { href: '#/register' }, 'register'),
        ' to bid or watch this auction.'));
      return;
    }
    if (me.id === a.sellerId) {
      box.appendChild(h('p', { class: 'seller-note', id: 'seller-note' },
        'This is your auction.',
        a.reservePrice ? ` Your reserve: ${formatMoney(a.reservePrice)}.` : '',
        a.bidCount === 0 ? ' ' : null,
        a.bidCount === 0 ? h('a', { href: `#/auction/${this.id}/images`, id: 'manage-images' }, 'Manage photos') : null));
      return;
    }
    box.appendChild(this.bidForm());
    box.appendChild(this.proxyForm());
    if (a.buyNowPrice) {
      this.el.buyNowBox = this.buyNowBox();
      box.appendChild(this.el.buyNowBox);
    }
    box.appendChild(this.watchButton());
  }

  buyNowOpen() {
    const a = this.auction;
    return Boolean(a.buyNowPrice) && a.status === 'active' && (a.bidCount === 0 || (a.hasReserve && !a.reserveMet));
  }

  bidForm() {
    const input = h('input', {
      id: 'bid-amount', name: 'amount', type: 'text', inputmode: 'decimal', autocomplete: 'off',
      'aria-describedby': 'bid-hint bid-message', required: true,
    });
    const button = h('button', { type: 'submit', id: 'bid-submit', class: 'primary' }, 'Place bid');
    const msg = messageBox('bid-message');
    const hint = h('p', { class: 'hint', id: 'bid-hint' });
    this.el.bidInput = input;
    this.el.bidHint = hint;
    input.addEventListener('input', () => { input.dataset.dirty = 'true'; });
    const form = h('form', { id: 'bid-form', class: 'bid-form', novalidate: true, 'data-testid': 'bid-form' },
      h('label', { for: 'bid-amount' }, 'Your bid'),
      hint,
      h('div', { class: 'inline' }, input, button),
      msg.el);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submitBid('bid', input, button, msg);
    });
    this.el.bidButton = button;
    return form;
  }

  proxyForm() {
    const input = h('input', {
      id: 'proxy-amount', name: 'maxAmount', type: 'text', inputmode: 'decimal', autocomplete: 'off',
      'aria-describedby': 'proxy-hint proxy-message', required: true,
    });
    const button = h('button', { type: 'submit', id: 'proxy-submit' }, 'Set maximum');
    const msg = messageBox('proxy-message');
    const form = h('form', { id: 'proxy-form', class: 'bid-form', novalidate: true, 'data-testid': 'proxy-form' },
      h('label', { for: 'proxy-amount' }, 'Maximum bid (automatic bidding)'),
      h('p', { class: 'hint', id: 'proxy-hint' },
        'The cluster bids for you, one increment at a time, up to this amount. Others never see it.'),
      h('div', { class: 'inline' }, input, button),
      msg.el);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submitBid('proxy', input, button, msg);
    });
    this.el.proxyButton = button;
    return form;
  }

  async submitBid(kind, input, button, msg) {
    const cents = toCents(input.value);
    if (cents === null || cents <= 0) {
      msg.error('Enter an amount such as 55.00 (at most two decimals).');
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    input.removeAttribute('aria-invalid');
    const amount = fromCents(cents);
    const path = `/auctions/${this.id}/${kind === 'proxy' ? 'proxy' : 'bids'}`;
    const json = kind === 'proxy' ? { maxAmount: amount } : { amount };
    button.disabled = true;
    msg.info(kind === 'proxy' ? 'Setting your maximum…' : 'Placing your bid…');
    const key = newKey();
    try {
      let res;
      try {
        res = await api('POST', path, { json, key });
      } catch (err) {
        // A dropped connection: the same key makes the retry safe (answered once, never twice).
        if (!(err instanceof ApiError) || (err.code !== 'NETWORK' && err.code !== 'TIMEOUT')) throw err;
        res = await api('POST', path, { json, key });
      }
      if (this.closed) return;
      this.iBid = true;
      this.applyBidAnswer(res);
      const price = formatMoney(res.currentPrice);
      if (res.status === 'winning') {
        msg.ok(kind === 'proxy'
          ? `Your maximum of ${formatMoney(amount)} is set. You are the high bidder at ${price}.`
          : `Bid accepted: you are the high bidder at ${price}.`);
      } else {
        msg.error(`Bid accepted, but you were outbid at once by a higher maximum. The price is now ${price}.`);
      }
      input.value = '';
      delete input.dataset.dirty;
      this.update();
    } catch (err) {
      if (this.closed) return;
      msg.error(errorText(err, kind));
      if (err instanceof ApiError) {
        if (err.code === 'BID_TOO_LOW' && err.details.minimumBid) {
          this.auction.minimumBid = err.details.minimumBid;
          this.update();
        }
        if (err.code === 'AUCTION_ENDED' || err.code === 'AUCTION_CANCELLED') this.scheduleRefresh(0);
        if (err.code === 'RATE_LIMITED') this.holdButtons(err.retryAfter || 5);
      }
      input.focus();
    } finally {
      if (!this.rateLimitedUntil || performance.now() >= this.rateLimitedUntil) button.disabled = false;
    }
  }

  /** After a 429: the bid buttons wait out retryAfter, saying how long is left. */
  holdButtons(seconds) {
    this.rateLimitedUntil = performance.now() + seconds * 1000;
    const buttons = [this.el.bidButton, this.el.proxyButton].filter(Boolean);
    const labels = buttons.map((b) => b.textContent);
    const step = () => {
      const left = Math.ceil((this.rateLimitedUntil - performance.now()) / 1000);
      if (left <= 0 || this.closed) {
        buttons.forEach((b, i) => { b.disabled = false; b.textContent = labels[i]; });
        this.rateLimitedUntil = null;
        return;
      }
      buttons.forEach((b) => { b.disabled = true; b.textContent = `Wait ${left} s`; });
      this.rateTimer = setTimeout(step, 250);
    };
    step();
  }

  buyNowBox() {
    const a = this.auction;
    const msg = messageBox('buy-now-message');
    const buy = h('button', { type: 'button', id: 'buy-now', class: 'buy-now' }, `Buy now for ${formatMoney(a.buyNowPrice)}`);
    const confirm = h('button', { type: 'button', id: 'buy-now-confirm', class: 'primary' }, 'Confirm purchase');
    const cancel = h('button', { type: 'button', id: 'buy-now-cancel' }, 'Cancel');
    const confirmRow = h('div', { class: 'inline confirm-row', id: 'buy-now-confirm-row' },
      h('span', null, `Buy this for ${formatMoney(a.buyNowPrice)}? The auction ends at once.`), confirm, cancel);
    confirmRow.hidden = true;
    buy.addEventListener('click', () => {
      confirmRow.hidden = false;
      buy.hidden = true;
      confirm.focus();
    });
    cancel.addEventListener('click', () => {
      confirmRow.hidden = true;
      buy.hidden = false;
      buy.focus();
    });
    confirm.addEventListener('click', async () => {
      confirm.disabled = true;
      msg.info('Buying…');
      try {
        const res = await api('POST', `/auctions/${this.id}/buy-now`, { key: newKey() });
        if (this.closed) return;
        this.iBid = true;
        this.applyBidAnswer(res);
        msg.ok(`You bought it for ${formatMoney(res.currentPrice)}.`);
        this.scheduleRefresh(0);
      } catch (err) {
        msg.error(errorText(err, 'buy'));
        confirm.disabled = false;
        if (err instanceof ApiError && err.code === 'RATE_LIMITED') this.holdButtons(err.retryAfter || 5);
        this.scheduleRefresh(0);
      }
    });
    return h('div', { class: 'buy-now-box', id: 'buy-now-box' }, buy, confirmRow, msg.el);
  }

  watchButton() {
    const button = h('button', { type: 'button', id: 'watch-toggle', class: 'watch', 'data-testid': 'watch-toggle', 'aria-pressed': 'false' }, 'Watch');
    const msg = messageBox('watch-message');
    this.el.watch = button;
    this.renderWatch();
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        if (this.watched) {
          await api('DELETE', `/users/me/watchlist/${this.id}`);
          this.watched = false;
          msg.ok('Removed from your watchlist.');
        } else {
          await api('POST', '/users/me/watchlist', { json: { auctionId: this.id } });
          this.watched = true;
          msg.ok('Added to your watchlist: you will be told about new bids and the end.');
        }
      } catch (err) {
        msg.error(errorText(err));
      } finally {
        button.disabled = false;
        this.renderWatch();
      }
    });
    return h('div', { class: 'watch-box' }, button, msg.el);
  }

  renderWatch() {
    const b = this.el.watch;
    if (!b) return;
    b.setAttribute('aria-pressed', this.watched ? 'true' : 'false');
    b.dataset.watched = this.watched ? 'true' : 'false';
    b.textContent = this.watched ? '★ Watching (unwatch)' : '☆ Watch';
  }

  async loadWatched() {
    if (!this.me) return;
    let cursor = null;
    try {
      for (let page = 0; page < 5; page += 1) {
        const data = await api('GET', '/users/me/watchlist', { query: { limit: 100, cursor } });
        if (this.closed) return;
        if (data.items.some((w) => w.auctionId === this.id)) {
          this.watched = true;
          break;
        }
        cursor = data.nextCursor;
        if (!cursor) {
          this.watched = false;
          break;
        }
      }
    } catch {
      this.watched = false;
    }
    this.renderWatch();
  }

  // ---- state ----------------------------------------------------------------------------
  /** Merges a newer view of the auction (a refresh or a snapshot); stale ones are ignored. */
  merge(next) {
    const cur = this.auction;
    if (!isOpen(cur.status) && isOpen(next.status)) return false;
    if ((next.bidCount ?? 0) < (cur.bidCount ?? 0)) return false;
    const before = cur.endTime;
    const images = next.images || cur.images;
    this.auction = { ...cur, ...next, images };
    if (next.images && JSON.stringify(next.images.map((i) => i.id)) !== JSON.stringify((cur.images || []).map((i) => i.id))) {
      this.renderGallery();
    }
    this.noteEndTime(before, this.auction.endTime);
    if (!isOpen(cur.status) || isOpen(this.auction.status)) this.update();
    else this.ended();
    return true;
  }

  applyBidAnswer(res) {
    const a = this.auction;
    if ((res.bidCount ?? 0) < (a.bidCount ?? 0)) return;
    const before = a.endTime;
    a.currentPrice = res.currentPrice;
    a.highBidderId = res.highBidderId;
    a.bidCount = res.bidCount ?? a.bidCount;
    if (res.endTime) a.endTime = res.endTime;
    a.minimumBid = minimumBid(a);
    this.noteEndTime(before, a.endTime);
    this.update();
    this.scheduleRefresh(150);
  }

  /** Shows an extension the moment the end time moves later. */
  noteEndTime(before, after) {
    const b = Date.parse(before);
    const x = Date.parse(after);
    if (!(x > b)) return;
    const seconds = Math.round((x - b) / 1000);
    const when = formatWhen(after, serverNow());
    const text = `Extended by ${seconds} s: a late bid moved the end to ${when}.`;
    this.el.extended.textContent = text;
    this.el.extended.hidden = false;
    this.el.extended.dataset.extendedTo = after;
    this.el.countdown.classList.remove('flash');
    void this.el.countdown.offsetWidth; // restart the animation
    this.el.countdown.classList.add('flash');
    setText(this.el.announce, text);
  }

  update() {
    const a = this.auction;
    const el = this.el;
    const me = this.me;
    el.status.textContent = STATUS_LABELS[a.status] || a.status;
    el.status.dataset.status = a.status;
    this.root.dataset.status = a.status;
    el.category.textContent = a.category ? a.category : '';
    if (a.currentPrice) {
      setText(el.priceLabel, isOpen(a.status) ? 'Current price' : 'Final price');
      setText(el.price, formatMoney(a.currentPrice));
    } else {
      setText(el.priceLabel, 'Starting price');
      setText(el.price, formatMoney(a.startingPrice));
    }
    el.price.dataset.amount = a.currentPrice || '';
    setText(el.minimum, isOpen(a.status) ? formatMoney(a.minimumBid) : '—');
    el.minimum.dataset.amount = a.minimumBid;
    setText(el.bidCount, String(a.bidCount));
    setText(el.reserve, !a.hasReserve ? 'No reserve' : a.reserveMet ? 'Reserve met' : 'Reserve not met');
    el.reserve.dataset.met = String(Boolean(a.reserveMet));
    setText(el.highBidder, a.highBidderId ? who(a.highBidderId, me) : 'No bids yet');
    setText(el.buyNowPrice, a.buyNowPrice ? formatMoney(a.buyNowPrice) : 'Not offered');
    setText(el.seller, who(a.sellerId, me, 'seller'));
    el.endTime.setAttribute('datetime', a.endTime);
    el.endTime.dataset.endTime = a.endTime;
    setText(el.endTime, formatDateTime(a.endTime));
    if (a.endTime !== a.originalEndTime && el.extended.hidden) {
      el.extended.textContent = `Extended by late bids (first set to end ${formatWhen(a.originalEndTime, serverNow())}).`;
      el.extended.hidden = false;
    }
    if (el.bidHint) {
      setText(el.bidHint, `Enter ${formatMoney(a.minimumBid)} or more.`);
      if (el.bidInput.dataset.dirty !== 'true' && document.activeElement !== el.bidInput) {
        el.bidInput.value = a.minimumBid;
      }
      el.bidInput.setAttribute('placeholder', a.minimumBid);
    }
    this.updateMyStatus();
    this.renderActions();
    if (this.el.buyNowBox) this.el.buyNowBox.hidden = !this.buyNowOpen();
    this.renderEnd();
    this.tick();
  }

  updateMyStatus() {
    const a = this.auction;
    const me = this.me;
    const el = this.el.myStatus;
    if (!me || me.id === a.sellerId) {
      el.hidden = true;
      return;
    }
    const bid = this.iBid || [...this.history.values()].some((b) => b.bidderId === me.id);
    let text = null;
    let kind = '';
    if (!bid && a.highBidderId !== me.id) {
      el.hidden = true;
      return;
    }
    if (isOpen(a.status)) {
      if (a.highBidderId === me.id) {
        text = a.hasReserve && !a.reserveMet ? 'You are the high bidder, but the reserve is not met yet.' : 'You are the high bidder.';
        kind = 'winning';
      } else {
        text = 'You have been outbid.';
        kind = 'outbid';
      }
    } else if (a.status === 'sold') {
      kind = a.winnerId === me.id ? 'won' : 'lost';
      text = kind === 'won' ? 'You won.' : 'You did not win.';
    } else {
      kind = 'lost';
      text = 'You did not win.';
    }
    const changedKind = el.dataset.kind !== kind;
    el.className = `my-status my-status-${kind}`;
    el.dataset.kind = kind;
    setText(el, text);
    el.hidden = false;
    if (changedKind && kind === 'outbid') setText(this.el.announce, text);
  }

  renderEnd() {
    const a = this.auction;
    const banner = this.el.endBanner;
    if (isOpen(a.status)) {
      banner.hidden = true;
      return;
    }
    const me = this.me;
    let text;
    if (a.status === 'sold') {
      const price = formatMoney(a.currentPrice);
      if (me && a.winnerId === me.id) text = `You won this auction for ${price}.`;
      else text = `Sold to ${who(a.winnerId, me)} for ${price}.`;
    } else if (a.status === 'unsold') {
      text = a.bidCount > 0 && a.hasReserve && !a.reserveMet
        ? 'Ended without a sale: the reserve was not met.'
        : 'Ended without a sale: there were no bids.';
    } else {
      text = 'This auction was cancelled.';
    }
    banner.className = `end-banner end-${a.status}`;
    banner.dataset.status = a.status;
    banner.dataset.winnerId = a.winnerId || '';
    const changed = banner.textContent !== text;
    setText(banner, text);
    banner.hidden = false;
    if (changed) setText(this.el.announce, text);
  }

  ended() {
    this.update();
    if (this.source) {
      this.source.close(); // nothing follows auction_ended
      this.source = null;
      this.setStream('ended', 'Ended');
    }
  }

  tick() {
    const a = this.auction;
    if (!a) return;
    const el = this.el;
    const now = serverNow();
    const end = Date.parse(a.endTime);
    const start = Date.parse(a.startTime);
    let label;
    let text;
    let remaining = null;
    if (a.status === 'scheduled' && now < start) {
      label = 'Starts in';
      text = formatRemaining(start - now);
    } else if (isOpen(a.status)) {
      remaining = end - now;
      label = 'Ends in';
      text = remaining > 0 ? formatRemaining(remaining) : 'Ending…';
      // No auction_ended yet (the stream may be down): ask, at most every 2 s.
      if (remaining < -2000 && performance.now() - this.lastEndingPoll > 2000) {
        this.lastEndingPoll = performance.now();
        this.scheduleRefresh(0);
      }
    } else {
      label = '';
      text = a.status === 'cancelled' ? 'Cancelled' : 'Ended';
    }
    setText(el.endLabel, isOpen(a.status) ? 'Ends at ' : 'Ended at ');
    setText(el.countdownLabel, label);
    setText(el.countdown, text);
    el.countdown.dataset.remainingMs = remaining === null ? '' : String(Math.max(0, Math.round(remaining)));
    el.countdown.classList.toggle('ending-soon', remaining !== null && remaining < 60000);
  }

  // ---- history ----------------------------------------------------------------------------
  async loadHistory() {
    try {
      const data = await api('GET', `/auctions/${this.id}/bids`, { query: { limit: 50 } });
      if (this.closed) return;
      this.addBids(data.items, false);
      this.el.historyEmpty.textContent = 'No bids yet.';
    } catch (err) {
      if (!this.closed) this.el.historyEmpty.textContent = `The bid history could not be loaded: ${errorText(err)}`;
    }
  }

  addBids(bids, live) {
    let added = false;
    for (const b of bids) {
      if (this.history.has(b.sequence)) continue;
      this.history.set(b.sequence, { ...b, live });
      added = true;
    }
    if (added) this.renderHistory();
  }

  renderHistory() {
    const me = this.me;
    const bids = [...this.history.values()].sort((x, y) => y.sequence - x.sequence);
    this.el.historyEmpty.hidden = bids.length > 0;
    replace(this.el.history, bids.map((b) => h('li', {
      class: `bid-row${b.live ? ' new' : ''}${me && b.bidderId === me.id ? ' mine' : ''}`,
      'data-testid': 'bid-row',
      'data-sequence': b.sequence,
      'data-amount': b.amount,
    },
    h('span', { class: 'amount' }, formatMoney(b.amount)),
    h('span', { class: 'bidder' }, who(b.bidderId, me),
      b.isProxy ? h('span', { class: 'tag' }, 'automatic') : null),
    h('time', { datetime: b.createdAt }, formatWhen(b.createdAt, serverNow())))));
    for (const b of bids) b.live = false;
    this.updateMyStatus();
  }

  // ---- the event stream -------------------------------------------------------------------
  connect() {
    if (this.closed || !isOpen(this.auction.status)) {
      this.setStream('ended', 'Ended');
      return;
    }
    const source = new EventSource(`/api/v1/auctions/${this.id}/events`);
    this.source = source;
    this.setStream('connecting', 'Connecting…');
    const parse = (ev) => {
      // Where the stream is (what EventSource sends back as Last-Event-ID when it reconnects).
      if (ev.lastEventId) this.el.stream.dataset.lastEventId = ev.lastEventId;
      try {
        return JSON.parse(ev.data);
      } catch {
        return null;
      }
    };
    source.addEventListener('open', () => this.setStream('live', 'Live: prices update as bids arrive'));
    source.addEventListener('snapshot', (ev) => {
      const data = parse(ev);
      if (!data || !data.auction) return;
      if (data.auction.serverTime) sampleServerTime(data.auction.serverTime);
      this.snapshots += 1;
      this.el.stream.dataset.snapshots = String(this.snapshots);
      this.merge(data.auction);
      // A second snapshot means a fresh start (after a resync or a reopened stream): events
      // may have been missed, so the history is read again.
      if (this.snapshots > 1) this.loadHistory();
    });
    source.addEventListener('resync', () => this.loadHistory());
    source.addEventListener('bid_placed', (ev) => {
      const e = parse(ev);
      if (!e) return;
      const a = this.auction;
      if (e.bidCount >= a.bidCount) {
        const before = a.endTime;
        a.currentPrice = e.currentPrice;
        a.highBidderId = e.highBidderId;
        a.bidCount = e.bidCount;
        a.endTime = e.endTime;
        a.minimumBid = minimumBid(a);
        this.noteEndTime(before, a.endTime);
        this.update(); // the price itself is a polite live region
      }
      this.addBids(e.steps || [], true);
      this.scheduleRefresh(250); // reserveMet and the exact minimum come from the auction view
    });
    source.addEventListener('auction_extended', (ev) => {
      const e = parse(ev);
      if (!e) return;
      const before = this.auction.endTime;
      if (Date.parse(e.endTime) > Date.parse(before)) {
        this.auction.endTime = e.endTime;
        this.noteEndTime(before, e.endTime);
        this.update();
      }
    });
    source.addEventListener('auction_ended', (ev) => {
      const e = parse(ev);
      if (!e) return;
      const a = this.auction;
      a.status = e.status;
      a.winnerId = e.winnerId;
      if (e.finalPrice) a.currentPrice = e.finalPrice;
      this.ended();
      this.scheduleRefresh(100);
    });
    source.addEventListener('error', () => {
      if (this.source !== source) return;
      if (source.readyState === EventSource.CLOSED) {
        // Refused (429 over the stream cap, 503): reopen after a pause; it starts with a
        // snapshot, and the history is read again.
        this.source = null;
        this.setStream('reconnecting', 'Connection lost: reconnecting…');
        this.reconnectDelay = Math.min((this.reconnectDelay || 1000) * 2, 30000);
        this.reconnectTimer = setTimeout(() => this.connect(), this.reconnectDelay);
      } else {
        this.setStream('reconnecting', 'Connection lost: reconnecting…');
      }
    });
  }

  setStream(state, text) {
    this.el.stream.dataset.state = state;
    setText(this.el.stream, text);
  }

  scheduleRefresh(delay) {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(async () => {
      try {
        // This node streamed the event, so its replica has applied it: a local read suffices.
        const data = await api('GET', `/auctions/${this.id}`, { query: { consistency: 'local' } });
        if (!this.closed) this.merge(data.auction);
      } catch {
        /* the stream and the next event keep the page current */
      }
    }, delay);
  }
}
