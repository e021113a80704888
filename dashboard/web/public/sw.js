// The guardian app's service worker: shows a notification when the server pushes that a
// request is waiting (the push carries no content, only which device and what kind), and
// opens the requests screen when it is tapped. It caches nothing.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

const TEXT = {
  "zh-CN": { title: "孩子有新的请求", body: { more_time: "想要更多时间", purchase: "想要购买", report: "有事情要告诉你" } },
  en: { title: "Your child is asking", body: { more_time: "More time", purchase: "A purchase", report: "Something to tell you" } },
};

self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  const lang = (self.navigator.language || "").toLowerCase().startsWith("zh") ? "zh-CN" : "en";
  const text = TEXT[lang];
  event.waitUntil(self.registration.showNotification(text.title, {
    body: text.body[data.kind] || text.title,
    tag: data.id ? `request-${data.id}` : "request",
    icon: "/icon.svg",
    data: { url: "/#/requests" },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil((async () => {
    const all = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const c of all) if (new URL(c.url).origin === self.location.origin) { await c.focus(); return c.navigate("/#/requests"); }
    return self.clients.openWindow("/#/requests");
  })());
});
