// Photos of an auction: upload (POST /auctions/{id}/images, the File itself as the body; the
// server sniffs the format), list, remove. Errors are shown per file.

import { api, errorText } from './api.js';
import { h, replace, messageBox } from './dom.js';

export const IMAGE_BYTES_MAX = 5 * 1024 * 1024;
export const IMAGES_MAX = 12;
const ACCEPT = 'image/jpeg,image/png,image/webp';

/** Uploads one file; resolves with the image, rejects with ApiError (or a local Error). */
export async function uploadImage(auctionId, file) {
  if (file.size > IMAGE_BYTES_MAX) {
    throw new Error(`${file.name} is ${(file.size / 1048576).toFixed(1)} MiB; at most 5 MiB`);
  }
  const data = await api('POST', `/auctions/${auctionId}/images`, { raw: file });
  return data.image;
}

/** One line per file in `list`: name, then "uploading…", "added" or the error. */
export function uploadRow(list, file) {
  const state = h('span', { class: 'upload-state' }, 'uploading…');
  const row = h('li', { class: 'upload-row', 'data-testid': 'upload-row', 'data-state': 'uploading' },
    h('span', { class: 'upload-name' }, file.name || 'image'), ' — ', state);
  list.appendChild(row);
  return {
    ok() {
      row.dataset.state = 'ok';
      state.textContent = 'added';
    },
    fail(err) {
      row.dataset.state = 'error';
      row.classList.add('error');
      row.setAttribute('role', 'alert');
      state.textContent = err instanceof Error && !('code' in err) ? err.message : errorText(err);
    },
  };
}

/** Uploads files one after the other into rows of `list`; resolves with the failures' count. */
export async function uploadAll(auctionId, files, list) {
  let failed = 0;
  for (const file of files) {
    const row = uploadRow(list, file);
    try {
      await uploadImage(auctionId, file);
      row.ok();
    } catch (err) {
      failed += 1;
      row.fail(err);
    }
  }
  return failed;
}

/** The photo manager of an auction the viewer sells: current photos, remove, add more. */
export function imageManager(auction) {
  const id = auction.id;
  let images = auction.images || [];
  const grid = h('ul', { class: 'image-grid', id: 'image-grid', 'data-testid': 'image-grid' });
  const msg = messageBox('images-message');
  const results = h('ul', { class: 'upload-results', id: 'upload-results', 'data-testid': 'upload-results' });
  const input = h('input', { type: 'file', id: 'image-file', name: 'image', accept: ACCEPT, multiple: true, 'aria-describedby': 'image-file-hint' });
  const button = h('button', { type: 'submit', id: 'image-upload', class: 'primary' }, 'Upload');

  function render() {
    if (images.length === 0) {
      replace(grid, h('li', { class: 'muted', id: 'no-images' }, 'No photos yet.'));
      return;
    }
    replace(grid, images.map((img, i) => h('li', { class: 'image-tile', 'data-image-id': img.id },
      h('img', { src: img.thumbnailUrl, alt: `Photo ${i + 1}`, width: img.thumbnailWidth, height: img.thumbnailHeight, 'data-testid': 'manager-thumbnail' }),
      h('button', {
        type: 'button',
        class: 'link-button danger',
        'aria-label': `Remove photo ${i + 1}`,
        onclick: async (ev) => {
          ev.currentTarget.disabled = true;
          try {
            const data = await api('DELETE', `/auctions/${id}/images/${img.id}`);
            images = data.items;
            msg.ok('Photo removed.');
          } catch (err) {
            msg.error(errorText(err));
          }
          render();
        },
      }, 'Remove'))));
  }

  async function reload() {
    try {
      const data = await api('GET', `/auctions/${id}/images`);
      images = data.items;
    } catch (err) {
      msg.error(errorText(err));
    }
    render();
  }

  const form = h('form', { id: 'image-form', class: 'image-form', novalidate: true },
    h('label', { for: 'image-file' }, 'Add photos'),
    h('p', { class: 'hint', id: 'image-file-hint' }, `JPEG, PNG or WebP, at most 5 MiB each, ${IMAGES_MAX} photos in all.`),
    h('div', { class: 'inline' }, input, button),
    results, msg.el);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const files = [...input.files];
    if (files.length === 0) {
      msg.error('Choose one or more image files first.');
      input.focus();
      return;
    }
    button.disabled = true;
    msg.clear();
    results.replaceChildren();
    const failed = await uploadAll(id, files, results);
    input.value = '';
    button.disabled = false;
    if (failed === 0) msg.ok(`${files.length} photo${files.length === 1 ? '' : 's'} added.`);
    else msg.error(`${failed} of ${files.length} upload${files.length === 1 ? '' : 's'} failed; see above.`);
    await reload();
  });
  render();
  return h('div', { class: 'image-manager', 'data-testid': 'image-manager' },
    h('h2', null, 'Photos'), grid, form);
}
