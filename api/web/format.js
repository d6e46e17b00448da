// Money (decimal strings, computed in integer cents) and times.

/** "55.5" / 55.5 -> 5550; null for anything that is not an amount with at most 2 decimals. */
export function toCents(value) {
  if (value === null || value === undefined) return null;
  const m = /^\s*(\d{1,10})(?:\.(\d{0,2}))?\s*$/.exec(String(value));
  if (!m) return null;
  return Number(m[1]) * 100 + Number((m[2] || '').padEnd(2, '0'));
}

/** 5550 -> "55.50" (the API's form). */
export function fromCents(cents) {
  const c = Math.round(cents);
  return `${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}`;
}

const moneyFormat = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });

/** "1234.5" -> "1,234.50" for display; "—" for none. */
export function formatMoney(value) {
  const cents = toCents(value);
  if (cents === null) return value === null || value === undefined ? '—' : String(value);
  return moneyFormat.format(cents / 100);
}

// DESIGN.md "Auction rules": the "ebay" ladder, in cents.
const LADDER = [
  [100, 5], [500, 25], [2500, 50], [10000, 100], [25000, 250],
  [50000, 500], [100000, 1000], [250000, 2500], [500000, 5000],
];

/** The increment above `priceCents` for an auction's bidIncrement ("1.00" or "ebay"). */
export function incrementCents(bidIncrement, priceCents) {
  if (bidIncrement === 'ebay') {
    for (const [below, step] of LADDER) if (priceCents < below) return step;
    return 10000;
  }
  return toCents(bidIncrement) ?? 100;
}

/** minimumBid as the API computes it: the starting price, else price + increment. */
export function minimumBid(auction) {
  if (auction.currentPrice === null || auction.currentPrice === undefined) return auction.startingPrice;
  const price = toCents(auction.currentPrice);
  return fromCents(price + incrementCents(auction.bidIncrement, price));
}

/** Remaining milliseconds -> "2d 03h", "1h 02m 05s", "4m 05s", "19s". */
export function formatRemaining(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const d = Math.floor(total / 86400);
  const hr = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const two = (n) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d ${two(hr)}h ${two(m)}m`;
  if (hr > 0) return `${hr}h ${two(m)}m ${two(s)}s`;
  if (m > 0) return `${m}m ${two(s)}s`;
  return `${s}s`;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
});

/** An RFC 3339 time as a local date and time ("Dec 3, 2026, 15:38:00"). */
export function formatDateTime(iso) {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? '—' : dateTimeFormat.format(new Date(ms));
}

/** Only the time of day when it is within a day of `nowMs`, else the date too. */
export function formatWhen(iso, nowMs) {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return '—';
  return Math.abs(ms - nowMs) < 20 * 3600 * 1000 ? timeFormat.format(new Date(ms)) : dateTimeFormat.format(new Date(ms));
}

export const STATUS_LABELS = {
  scheduled: 'Upcoming',
  active: 'Open',
  sold: 'Sold',
  unsold: 'Ended, unsold',
  cancelled: 'Cancelled',
};

export function isOpen(status) {
  return status === 'active' || status === 'scheduled';
}
