// DOM building without parsing any HTML: every piece of text goes through textContent or a text node,
// so user-supplied titles, descriptions and names can never become markup.

/**
 * h('a', {href: '#/', class: 'x', onclick: fn}, 'text', child, [more]) -> element.
 * Attributes: `class`, `text` (textContent), `dataset` (object), `on<event>` (function),
 * `value` / `checked` / `disabled` / `hidden` (properties), anything else setAttribute.
 * null / undefined / false values and children are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, val] of Object.entries(attrs)) {
      if (val === null || val === undefined || val === false) continue;
      if (key === 'class') el.className = val;
      else if (key === 'text') el.textContent = String(val);
      else if (key === 'dataset') Object.assign(el.dataset, val);
      else if (key.startsWith('on') && typeof val === 'function') el.addEventListener(key.slice(2), val);
      else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'hidden') continue;
      else el.setAttribute(key, val === true ? '' : String(val));
    }
  }
  append(el, children);
  if (attrs) {
    for (const key of ['value', 'checked', 'disabled', 'hidden']) {
      if (key in attrs && attrs[key] !== null && attrs[key] !== undefined) el[key] = attrs[key];
    }
  }
  return el;
}

export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces every child of `el` with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Sets the text of `el` only when it changes (keeps live regions quiet when nothing moved). */
export function setText(el, text) {
  const value = String(text);
  if (el && el.textContent !== value) el.textContent = value;
}

let uid = 0;
/** A fresh id for label/aria wiring. */
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * A labelled form field: returns {wrap, input, error}. `opts.id` is the input's id,
 * `opts.hint` a line under the label (wired with aria-describedby), `opts.tag` 'input',
 * 'textarea' or 'select', `opts.options` [[value, label], ...] for a select.
 */
export function field(label, opts) {
  const id = opts.id || nextId('field');
  const hintId = opts.hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const tag = opts.tag || 'input';
  const attrs = {
    id,
    name: opts.name || id,
    'aria-describedby': [hintId, errorId].filter(Boolean).join(' '),
    ...(opts.attrs || {}),
  };
  if (tag === 'input') attrs.type = opts.type || 'text';
  let input;
  if (tag === 'select') {
    input = h('select', attrs, (opts.options || []).map(([value, text]) => h('option', { value }, text)));
    if (opts.value !== undefined) input.value = opts.value;
  } else {
    input = h(tag, attrs);
    if (opts.value !== undefined && opts.value !== null) input.value = opts.value;
  }
  const error = h('p', { class: 'field-error', id: errorId, 'data-testid': `${id}-error` });
  error.hidden = true;
  const wrap = h('div', { class: `field ${opts.wrapClass || ''}`.trim() },
    h('label', { for: id }, label, opts.optional ? h('span', { class: 'optional' }, ' (optional)') : null),
    hintId ? h('p', { class: 'hint', id: hintId }, opts.hint) : null,
    input,
    error);
  return { wrap, input, error };
}

/** Shows `message` under a field made by field() and marks the input invalid. */
export function fieldError(f, message) {
  if (!f) return;
  if (message) {
    f.error.textContent = message;
    f.error.hidden = false;
    f.input.setAttribute('aria-invalid', 'true');
  } else {
    f.error.textContent = '';
    f.error.hidden = true;
    f.input.removeAttribute('aria-invalid');
  }
}

/** A message area for a form: role=alert for errors, polite status for the rest. */
export function messageBox(id) {
  const box = h('div', { class: 'form-message', id, 'data-testid': id, 'aria-live': 'polite' });
  box.hidden = true;
  return {
    el: box,
    error(text, extra) {
      box.className = 'form-message error';
      box.setAttribute('role', 'alert');
      replace(box, text, extra || null);
      box.hidden = false;
      box.dataset.kind = 'error';
    },
    ok(text, extra) {
      box.className = 'form-message ok';
      box.setAttribute('role', 'status');
      replace(box, text, extra || null);
      box.hidden = false;
      box.dataset.kind = 'ok';
    },
    info(text) {
      box.className = 'form-message info';
      box.setAttribute('role', 'status');
      replace(box, text);
      box.hidden = false;
      box.dataset.kind = 'info';
    },
    clear() {
      box.hidden = true;
      box.replaceChildren();
      delete box.dataset.kind;
    },
  };
}
