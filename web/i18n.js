// i18n.js — the page's language: the one the user picked, else the browser's first that the
// page speaks, else English. Every string lives in one file per language (en.js, es.js);
// a string missing from one falls back to English.

import en from './en.js';
import es from './es.js';

const STRINGS = { en, es };
export const LANGUAGES = [['en', 'English'], ['es', 'Español']];

let current = localStorage.getItem('vigia.lang');
if (!STRINGS[current]) {
  current = (navigator.languages || [navigator.language || 'en'])
    .map((l) => l.slice(0, 2).toLowerCase())
    .find((l) => STRINGS[l]) || 'en';
}

export function lang() { return current; }

/** The locale for dates and times. */
export function locale() { return current === 'es' ? 'es-ES' : 'en-GB'; }

export function setLang(code) {
  if (!STRINGS[code]) return;
  current = code;
  localStorage.setItem('vigia.lang', code);
}

/** The string `key` with `{name}`s replaced from `vars`. */
export function t(key, vars) {
  let s = STRINGS[current][key] ?? en[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}
