"""Guardian notifications while the app is closed: a provider interface, and Web Push
(RFC 8030, with RFC 8291 message encryption and RFC 8292 VAPID) as its first provider."""
