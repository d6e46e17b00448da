// Sign in and register. The session is the HttpOnly cookie the login answer sets; nothing is
// kept in storage.

import { errorText, ApiError } from './api.js';
import { h, field, fieldError, messageBox } from './dom.js';
import { login, register, session } from './session.js';

function destination(query) {
  const ret = query.get('return');
  // Only a path of this app (never an absolute URL).
  return ret && /^\/[A-Za-z0-9/_\-?=&%.]*$/.test(ret) && !ret.startsWith('//') ? ret : '/';
}

export function loginPage({ query, navigate }) {
  const email = field('Email', { id: 'login-email', type: 'email', attrs: { autocomplete: 'username', required: true } });
  const password = field('Password', { id: 'login-password', type: 'password', attrs: { autocomplete: 'current-password', required: true } });
  const msg = messageBox('login-error');
  const submit = h('button', { type: 'submit', id: 'login-submit', class: 'primary' }, 'Sign in');
  const form = h('form', { id: 'login-form', class: 'auth-form', novalidate: true }, email.wrap, password.wrap, submit, msg.el);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.clear();
    if (!email.input.value.trim() || !password.input.value) {
      msg.error('Enter your email and password.');
      (email.input.value.trim() ? password.input : email.input).focus();
      return;
    }
    submit.disabled = true;
    try {
      await login(email.input.value.trim(), password.input.value);
      navigate(destination(query));
    } catch (err) {
      msg.error(errorText(err, 'login'));
      password.input.focus();
    } finally {
      submit.disabled = false;
    }
  });
  const node = h('section', { class: 'auth-page narrow-page', 'data-testid': 'login-page' },
    h('h1', null, 'Sign in'),
    session.user ? h('p', { class: 'muted' }, `You are signed in as ${session.user.displayName}.`) : null,
    form,
    h('p', null, 'New here? ', h('a', { href: '#/register', id: 'to-register' }, 'Create an account'), '.'));
  return { title: 'Sign in', node };
}

export function registerPage({ navigate }) {
  const email = field('Email', { id: 'register-email', type: 'email', attrs: { autocomplete: 'email', required: true } });
  const name = field('Display name', { id: 'register-name', hint: 'Shown to you; others see a bidder number.', attrs: { autocomplete: 'nickname', required: true, maxlength: 64 } });
  const password = field('Password', { id: 'register-password', type: 'password', hint: '8 to 128 characters.', attrs: { autocomplete: 'new-password', required: true, minlength: 8, maxlength: 128 } });
  const msg = messageBox('register-error');
  const submit = h('button', { type: 'submit', id: 'register-submit', class: 'primary' }, 'Create account');
  const fields = { email, displayName: name, password };
  const form = h('form', { id: 'register-form', class: 'auth-form', novalidate: true }, email.wrap, name.wrap, password.wrap, submit, msg.el);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.clear();
    for (const f of Object.values(fields)) fieldError(f, null);
    const pw = password.input.value;
    if (pw.length < 8) {
      fieldError(password, 'At least 8 characters.');
      password.input.focus();
      return;
    }
    submit.disabled = true;
    try {
      await register(email.input.value.trim(), pw, name.input.value.trim());
      navigate('/');
    } catch (err) {
      const f = err instanceof ApiError && err.field ? fields[err.field] : null;
      if (f) {
        fieldError(f, err.message);
        f.input.focus();
      }
      msg.error(errorText(err));
    } finally {
      submit.disabled = false;
    }
  });
  const node = h('section', { class: 'auth-page narrow-page', 'data-testid': 'register-page' },
    h('h1', null, 'Create an account'),
    form,
    h('p', null, 'Already registered? ', h('a', { href: '#/login', id: 'to-login' }, 'Sign in'), '.'));
  return { title: 'Register', node };
}
