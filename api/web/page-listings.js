// Listings: GET /search with words, category, price range, status and sort; "Load more" pages
// with nextCursor. The filters live in the hash (#/?q=...&sort=...) so back / forward work.

import { api, errorText } from './api.js';
import { h, replace, field, messageBox } from './dom.js';
import { toCents, fromCents } from './format.js';
import { auctionCard, cardTicker, tickCards } from './cards.js';

const SORTS = [
  ['', 'Best match'],
  ['ending_soon', 'Ending soonest'],
  ['newest', 'Newly listed'],
  ['price_asc', 'Price: low to high'],
  ['price_desc', 'Price: high to low'],
  ['most_bids', 'Most bids'],
];
const STATUSES = [
  ['active', 'Open now'],
  ['scheduled', 'Upcoming'],
  ['sold,unsold', 'Ended'],
  ['all', 'All'],
];
const knownCategories = new Set();

export function listingsPage({ query, navigate }) {
  const q = query.get('q') || '';
  const category = query.get('category') || '';
  const min = query.get('minPrice') || '';
  const max = query.get('maxPrice') || '';
  const status = query.get('status') || 'active';
  const sort = query.get('sort') || '';

  const fq = field('Search', { id: 'search-q', type: 'search', value: q, attrs: { placeholder: 'e.g. vintage watch', maxlength: 200, autocomplete: 'off' } });
  const fcat = field('Category', { id: 'filter-category', tag: 'select', options: [['', 'All categories']] });
  const fmin = field('Min price', { id: 'filter-min', value: min, attrs: { inputmode: 'decimal', placeholder: '0.00' }, wrapClass: 'narrow' });
  const fmax = field('Max price', { id: 'filter-max', value: max, attrs: { inputmode: 'decimal', placeholder: 'any' }, wrapClass: 'narrow' });
  const fstatus = field('Show', { id: 'filter-status', tag: 'select', options: STATUSES, value: status });
  const fsort = field('Sort by', { id: 'filter-sort', tag: 'select', options: SORTS, value: sort });
  const errors = messageBox('search-error');
  const fillCategories = (facets) => {
    for (const name of Object.keys(facets || {})) knownCategories.add(name);
    if (category) knownCategories.add(category);
    const names = [...knownCategories].sort((x, y) => x.localeCompare(y));
    replace(fcat.input, h('option', { value: '' }, 'All categories'),
      names.map((name) => h('option', { value: name },
        facets && facets[name] !== undefined ? `${name} (${facets[name]})` : name)));
    fcat.input.value = category;
  };
  fillCategories(null);

  const form = h('form', { id: 'search-form', class: 'search-form', role: 'search', 'aria-label': 'Find auctions', novalidate: true },
    h('div', { class: 'search-row' }, fq.wrap, h('button', { type: 'submit', id: 'search-submit', class: 'primary' }, 'Search')),
    h('div', { class: 'filter-row' }, fcat.wrap, fmin.wrap, fmax.wrap, fstatus.wrap, fsort.wrap),
    errors.el);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const params = new URLSearchParams();
    const words = fq.input.value.trim();
    if (words) params.set('q', words);
    if (fcat.input.value) params.set('category', fcat.input.value);
    for (const [f, name] of [[fmin, 'minPrice'], [fmax, 'maxPrice']]) {
      const v = f.input.value.trim();
      if (!v) continue;
      const cents = toCents(v);
      if (cents === null) {
        errors.error(`${name === 'minPrice' ? 'Min' : 'Max'} price must be an amount such as 25.00.`);
        f.input.focus();
        return;
      }
      params.set(name, fromCents(cents));
    }
    if (fstatus.input.value !== 'active') params.set('status', fstatus.input.value);
    if (fsort.input.value) params.set('sort', fsort.input.value);
    const s = params.toString();
    navigate(s ? `/?${s}` : '/');
  });
  // Selects apply at once; text fields on submit.
  for (const f of [fcat, fstatus, fsort]) f.input.addEventListener('change', () => form.requestSubmit());

  const summary = h('p', { id: 'results-summary', class: 'results-summary', 'aria-live': 'polite', 'data-testid': 'results-summary' }, 'Searching…');
  const list = h('ul', { id: 'auction-list', class: 'cards', 'data-testid': 'auction-list' });
  const more = h('button', { type: 'button', id: 'load-more', class: 'load-more' }, 'Load more');
  more.hidden = true;
  const node = h('section', { class: 'listings-page', 'data-testid': 'listings-page' },
    h('h1', null, q ? `Results for “${q}”` : 'Auctions'),
    form, summary, list, more);

  let cursor = null;
  let closed = false;
  let shown = 0;
  const base = { q, category, minPrice: min, maxPrice: max, sort };
  if (status !== 'all') base.status = status;
  async function page(first) {
    more.disabled = true;
    try {
      const data = await api('GET', '/search', { query: { ...base, cursor: first ? null : cursor, limit: 20 } });
      if (closed) return;
      if (first) fillCategories(data.facets && data.facets.category);
      for (const a of data.items) list.appendChild(auctionCard(a));
      tickCards(list);
      shown += data.items.length;
      cursor = data.nextCursor;
      more.hidden = !cursor;
      summary.textContent = data.total === 0
        ? 'No auctions match. Try fewer words or other filters.'
        : `Showing ${shown} of ${data.total} auction${data.total === 1 ? '' : 's'}.`;
      errors.clear();
    } catch (err) {
      if (closed) return;
      summary.textContent = '';
      errors.error(errorText(err));
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', () => page(false));
  page(true);
  const stop = cardTicker(list);
  return { title: q ? `Search: ${q}` : 'Auctions', node, cleanup: () => { closed = true; stop(); } };
}
