// Names for ids: products, models, channels, delivery methods and procedures, loaded once
// per page view (and again on demand) so that tables show "Sensor rev B", not a UUID.
// Lists the caller may not read (403) are simply empty.

import { listAll } from './api.js';

const KINDS = {
  products: 'products',
  models: 'models',
  channels: 'channels',
  methods: 'delivery-methods',
  procedures: 'delivery-procedures',
  users: 'users',
};

export const cat = { products: [], models: [], channels: [], methods: [], procedures: [], users: [] };
const byId = new Map();

export async function load(...kinds) {
  const want = kinds.length ? kinds : Object.keys(KINDS);
  await Promise.all(want.map(async (k) => {
    try {
      cat[k] = await listAll(KINDS[k]);
    } catch {
      cat[k] = [];
    }
    for (const o of cat[k]) byId.set(o.id, o);
  }));
  return cat;
}

export function name(id) {
  if (!id) return '—';
  const o = byId.get(id);
  if (!o) return id.slice(0, 8);
  return o.name && o.tid && o.name !== o.tid ? `${o.name} (${o.tid})` : o.name || o.tid || o.device_id || id.slice(0, 8);
}

export function tid(id) {
  const o = byId.get(id);
  return (o && (o.tid || o.name)) || (id ? id.slice(0, 8) : '—');
}

export function remember(o) {
  if (o && o.id) byId.set(o.id, o);
}
