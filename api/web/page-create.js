// #/sell: create an auction (POST /auctions), then upload the chosen photos to it. On success
// the auction's page opens; when an upload fails, the page stays with the errors and the photo
// manager.

import { api, ApiError, errorText, newKey } from './api.js';
import { h, replace, field, fieldError, messageBox } from './dom.js';
import { toCents, fromCents } from './format.js';
import { session } from './session.js';
import { uploadAll, imageManager, IMAGES_MAX } from './images.js';

const UNITS = [['seconds', 'seconds', 1], ['minutes', 'minutes', 60], ['hours', 'hours', 3600], ['days', 'days', 86400]];

export function createPage({ navigate }) {
  if (!session.user) {
    return {
      title: 'Sell',
      node: h('section', { class: 'narrow-page', 'data-testid': 'create-page' },
        h('h1', null, 'Sell an item'),
        h('p', null, h('a', { href: '#/login?return=%2Fsell', id: 'create-sign-in' }, 'Sign in'), ' or ',
          h('a', { href: '#/register' }, 'register'), ' to list an item.')),
    };
  }
  const f = {
    title: field('Title', { id: 'create-title', attrs: { required: true, maxlength: 200 } }),
    description: field('Description', { id: 'create-description', tag: 'textarea', optional: true, attrs: { rows: 5 } }),
    category: field('Category', { id: 'create-category', optional: true, attrs: { maxlength: 64, placeholder: 'e.g. watches' } }),
    startingPrice: field('Starting price', { id: 'create-starting-price', value: '1.00', attrs: { inputmode: 'decimal', required: true } }),
    reservePrice: field('Reserve price', { id: 'create-reserve', optional: true, hint: 'The lowest price you accept; bidders only see whether it is met.', attrs: { inputmode: 'decimal' } }),
    buyNowPrice: field('Buy-now price', { id: 'create-buy-now', optional: true, hint: 'Lets a buyer end the auction at once, until the first bid (or while the reserve is not met).', attrs: { inputmode: 'decimal' } }),
    bidIncrement: field('Bid increment', { id: 'create-increment', value: '1.00', hint: 'An amount, or “ebay” for the tiered ladder.', attrs: { autocomplete: 'off' } }),
    duration: field('Duration', { id: 'create-duration', type: 'number', value: '7', attrs: { min: 1, step: 1, required: true }, wrapClass: 'narrow' }),
    durationUnit: field('Unit', { id: 'create-duration-unit', tag: 'select', options: UNITS.map(([v, l]) => [v, l]), value: 'days', wrapClass: 'narrow' }),
    window: field('Anti-sniping window (s)', { id: 'create-antisnipe-window', type: 'number', value: '120', hint: 'A bid this close to the end extends it. 0 turns it off.', attrs: { min: 0, max: 86400, step: 1 }, wrapClass: 'narrow' }),
    extension: field('Extension (s)', { id: 'create-antisnipe-extension', type: 'number', value: '120', attrs: { min: 0, max: 86400, step: 1 }, wrapClass: 'narrow' }),
  };
  const files = h('input', { type: 'file', id: 'create-images', name: 'images', accept: 'image/jpeg,image/png,image/webp', multiple: true, 'aria-describedby': 'create-images-hint' });
  const msg = messageBox('create-error');
  const submit = h('button', { type: 'submit', id: 'create-submit', class: 'primary' }, 'List the item');
  const results = h('ul', { class: 'upload-results', id: 'create-upload-results', 'data-testid': 'upload-results' });
  const form = h('form', { id: 'create-form', class: 'create-form', novalidate: true },
    f.title.wrap, f.description.wrap, f.category.wrap,
    h('fieldset', null, h('legend', null, 'Price'),
      h('div', { class: 'grid-2' }, f.startingPrice.wrap, f.bidIncrement.wrap, f.reservePrice.wrap, f.buyNowPrice.wrap)),
    h('fieldset', null, h('legend', null, 'Timing'),
      h('div', { class: 'grid-2' }, f.duration.wrap, f.durationUnit.wrap, f.window.wrap, f.extension.wrap)),
    h('div', { class: 'field' },
      h('label', { for: 'create-images' }, 'Photos', h('span', { class: 'optional' }, ' (optional)')),
      h('p', { class: 'hint', id: 'create-images-hint' }, `JPEG, PNG or WebP, at most 5 MiB each, up to ${IMAGES_MAX}. Uploaded right after the auction is created.`),
      files),
    submit, results, msg.el);

  const fieldOf = {
    title: f.title, description: f.description, category: f.category,
    startingPrice: f.startingPrice, reservePrice: f.reservePrice, buyNowPrice: f.buyNowPrice,
    bidIncrement: f.bidIncrement, durationSeconds: f.duration, endTime: f.duration,
    'antiSnipe.windowSeconds': f.window, 'antiSnipe.extensionSeconds': f.extension, antiSnipe: f.window,
  };

  function money(fld, required, label) {
    const v = fld.input.value.trim();
    if (!v) {
      if (required) throw Object.assign(new Error(`${label} is required.`), { fld });
      return undefined;
    }
    const c = toCents(v);
    if (c === null || c <= 0) throw Object.assign(new Error(`${label} must be an amount such as 25.00 (at most two decimals).`), { fld });
    return fromCents(c);
  }
  function whole(fld, label) {
    const v = fld.input.value.trim();
    if (!/^\d+$/.test(v)) throw Object.assign(new Error(`${label} must be a whole number.`), { fld });
    return Number(v);
  }

  let closed = false;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.clear();
    for (const x of Object.values(f)) fieldError(x, null);
    let body;
    try {
      const title = f.title.input.value.trim();
      if (!title) throw Object.assign(new Error('Give the item a title.'), { fld: f.title });
      const inc = f.bidIncrement.input.value.trim().toLowerCase();
      const unit = UNITS.find(([v]) => v === f.durationUnit.input.value) || UNITS[3];
      const duration = whole(f.duration, 'Duration');
      if (duration <= 0) throw Object.assign(new Error('Duration must be at least 1.'), { fld: f.duration });
      body = {
        title,
        description: f.description.input.value || undefined,
        category: f.category.input.value.trim() || undefined,
        startingPrice: money(f.startingPrice, true, 'Starting price'),
        reservePrice: money(f.reservePrice, false, 'Reserve price'),
        buyNowPrice: money(f.buyNowPrice, false, 'Buy-now price'),
        bidIncrement: inc === 'ebay' ? 'ebay' : money(f.bidIncrement, true, 'Bid increment'),
        durationSeconds: duration * unit[2],
        antiSnipe: {
          windowSeconds: whole(f.window, 'Anti-sniping window'),
          extensionSeconds: whole(f.extension, 'Extension'),
        },
      };
    } catch (err) {
      fieldError(err.fld, err.message);
      msg.error(err.message);
      if (err.fld) err.fld.input.focus();
      return;
    }
    const chosen = [...files.files];
    if (chosen.length > IMAGES_MAX) {
      msg.error(`At most ${IMAGES_MAX} photos.`);
      files.focus();
      return;
    }
    submit.disabled = true;
    msg.info('Creating the auction…');
    let auction;
    try {
      const data = await api('POST', '/auctions', { json: body, key: newKey() });
      auction = data.auction;
    } catch (err) {
      submit.disabled = false;
      const fld = err instanceof ApiError && err.field ? fieldOf[err.field] : null;
      if (fld) {
        fieldError(fld, err.message);
        fld.input.focus();
      }
      msg.error(errorText(err));
      return;
    }
    if (closed) return;
    if (chosen.length === 0) {
      navigate(`/auction/${auction.id}`);
      return;
    }
    msg.info(`Auction created. Uploading ${chosen.length} photo${chosen.length === 1 ? '' : 's'}…`);
    const failed = await uploadAll(auction.id, chosen, results);
    if (closed) return;
    if (failed === 0) {
      navigate(`/auction/${auction.id}`);
      return;
    }
    // Keep the errors on screen, with the manager to try again and a way on to the auction.
    msg.error(`The auction is listed, but ${failed} of ${chosen.length} photo upload${chosen.length === 1 ? '' : 's'} failed (see above).`);
    const fresh = await api('GET', `/auctions/${auction.id}`).then((d) => d.auction).catch(() => auction);
    if (closed) return;
    replace(node, h('h1', { tabindex: '-1' }, 'Auction listed'),
      h('p', null, h('a', { href: `#/auction/${auction.id}`, id: 'view-created-auction' }, `View “${auction.title}”`)),
      h('div', { class: 'upload-summary' }, results, msg.el),
      imageManager(fresh));
    node.querySelector('h1').focus();
  });

  const node = h('section', { class: 'create-page narrow-page', 'data-testid': 'create-page' },
    h('h1', null, 'Sell an item'), form);
  return { title: 'Sell', node, cleanup: () => { closed = true; } };
}
