// The ids this browser made, since the API lists neither responses nor conversations.
const LIMIT = 50;

function read(kind) {
  try {
    return JSON.parse(localStorage.getItem(`oasis.playground.${kind}`)) || [];
  } catch {
    return [];
  }
}

/** Remembers `entry` ({id, ...}) first in the `kind` list ("responses" or "conversations"). */
export function remember(kind, entry) {
  const kept = read(kind).filter((old) => old.id !== entry.id);
  kept.unshift({ ...entry, at: Date.now() });
  localStorage.setItem(`oasis.playground.${kind}`, JSON.stringify(kept.slice(0, LIMIT)));
}

export function forget(kind, id) {
  const kept = read(kind).filter((old) => old.id !== id);
  localStorage.setItem(`oasis.playground.${kind}`, JSON.stringify(kept));
}

export function recall(kind) {
  return read(kind);
}
