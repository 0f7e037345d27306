// The sign-in form: POST /api/login (JSON), then on to the softphone.

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

const form = byTestId('login-form');
const user = byTestId('login-user');
const password = byTestId('login-password');
const submit = byTestId('login-submit');
const error = byTestId('login-error');
const notice = byTestId('login-notice');

function showError(text, field) {
  error.textContent = text;
  error.hidden = false;
  for (const input of [user, password]) {
    input.setAttribute('aria-invalid', String(input === field || field === 'both'));
    input.setAttribute('aria-describedby', 'login-error');
  }
  const target = field === 'both' ? password : field;
  target?.focus();
  target?.select?.();
}

function clearError() {
  error.hidden = true;
  error.textContent = '';
  for (const input of [user, password]) input.removeAttribute('aria-invalid');
}

async function signIn(event) {
  event.preventDefault();
  clearError();
  if (!user.value.trim()) return showError('Enter your login.', user);
  if (!password.value) return showError('Enter your password.', password);
  submit.disabled = true;
  submit.textContent = 'Signing in…';
  try {
    const response = await fetch('/api/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      credentials: 'same-origin',
      body: JSON.stringify({ login: user.value.trim(), password: password.value }),
    });
    if (response.ok) {
      location.assign(homeOf(await response.json()));
      return;
    }
    if (response.status === 401) {
      showError('That login and password do not match. Check them and try again.', 'both');
    } else if (response.status === 429) {
      // Too many failed sign-ins: the server says how long to wait.
      const wait = Number(response.headers.get('Retry-After')) || 60;
      showError(`Too many failed sign-ins. Try again in ${Math.ceil(wait / 60)} min.`, null);
    } else {
      showError(`The bridge could not sign you in (HTTP ${response.status}). Try again in a moment.`, null);
    }
  } catch {
    showError('The bridge cannot be reached. Check your connection, then try again.', null);
  }
  submit.disabled = false;
  submit.textContent = 'Sign in';
}

// Supervisors land on the wallboard, client admins on their overflow page, agents on the softphone.
function homeOf(me) {
  return { supervisor: '/supervisor', client_admin: '/client' }[me.role] ?? '/agent';
}

async function skipIfSignedIn() {
  try {
    const response = await fetch('/api/me', { credentials: 'same-origin' });
    if (response.ok) location.replace(homeOf(await response.json()));
  } catch {
    // Offline: the form stays, and says so on submit.
  }
}

if (new URLSearchParams(location.search).has('expired')) {
  notice.textContent = 'Your session ended. Sign in again to take calls.';
  notice.hidden = false;
}
form.addEventListener('submit', signIn);
user.focus();
skipIfSignedIn();
