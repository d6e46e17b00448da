// #/auction/{id}/images: the seller's photo manager for one auction.

import { api, errorText } from './api.js';
import { h, replace } from './dom.js';
import { session } from './session.js';
import { imageManager } from './images.js';

export function imagesPage({ params }) {
  const id = params[0].toLowerCase();
  const body = h('div', null, h('p', null, 'Loading…'));
  const title = h('h1', null, 'Photos');
  const node = h('section', { class: 'images-page narrow-page', 'data-testid': 'images-page' },
    h('p', { class: 'back' }, h('a', { href: `#/auction/${id}`, id: 'back-to-auction' }, '← Back to the auction')),
    title, body);
  let closed = false;
  (async () => {
    try {
      const data = await api('GET', `/auctions/${id}`);
      if (closed) return;
      const a = data.auction;
      title.textContent = `Photos of “${a.title}”`;
      if (!session.user || session.user.id !== a.sellerId) {
        replace(body, h('p', { role: 'alert' }, 'Only the seller can change the photos of an auction.'));
        return;
      }
      replace(body, imageManager(a));
    } catch (err) {
      if (!closed) replace(body, h('p', { role: 'alert' }, errorText(err)));
    }
  })();
  return { title: 'Photos', node, cleanup: () => { closed = true; } };
}
