'use strict';
// luot's service worker (rule 93): shows a ticket's alert when the push
// service brings one, "còn N người" or the call, and opens the ticket page
// when the notification is tapped. It keeps nothing and caches nothing.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

self.addEventListener('push', (e) => {
  let m = {};
  try { m = e.data ? e.data.json() : {}; } catch (_) { m = {}; }
  const called = m.kind === 'called';
  const title = (called ? 'Đến lượt bạn: số ' : 'Sắp đến lượt: số ') + (m.number || '');
  e.waitUntil(self.registration.showNotification(title, {
    body: m.text || '',
    tag: 'luot-' + (m.number || ''),
    renotify: true,
    requireInteraction: called,
    lang: 'vi',
    data: { url: m.url || '/' },
  }));
});

self.addEventListener('notificationclick', (e) => {
  e.notification.close();
  const url = (e.notification.data && e.notification.data.url) || '/';
  e.waitUntil((async () => {
    const open = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const same = open.find((c) => c.url === url);
    if (same) return same.focus();
    return self.clients.openWindow(url);
  })());
});
