"""The console: server-rendered pages under /console/ (docs/console.md), signed in with an API key into
a session cookie, made live with htmx; every asset served by central (static/, static/vendor/)."""
