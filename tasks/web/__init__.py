"""The app as a client sees it: `page` reads its facts back from the plain-text or the HTML
answer (pure); `browser` opens it in headless Chromium by its name (runbooks/browse.py)."""
