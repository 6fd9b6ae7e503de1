// The key lives in sessionStorage: typed once per tab, gone when the tab closes.

const KEY = "batchgate.key";
const ON_BEHALF_OF = "batchgate.onBehalfOf";

export function credentials() {
  const key = sessionStorage.getItem(KEY);
  return key ? { key, onBehalfOf: sessionStorage.getItem(ON_BEHALF_OF) || "" } : null;
}

export function remember(key, onBehalfOf) {
  sessionStorage.setItem(KEY, key);
  if (onBehalfOf) sessionStorage.setItem(ON_BEHALF_OF, onBehalfOf);
  else sessionStorage.removeItem(ON_BEHALF_OF);
}

export function forget() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ON_BEHALF_OF);
}

/** "sk-abc…" and the X-On-Behalf-Of value, for the header. */
export function describe({ key, onBehalfOf }) {
  const shown = `key ${key.slice(0, 7)}…`;
  return onBehalfOf ? `${shown} · on behalf of ${onBehalfOf}` : shown;
}
