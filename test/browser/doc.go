// Package browser holds end-to-end tests of the operator live page in a headless
// Chromium: a real directory with real JoinMarket peers connected over TCP, the ops
// surface in front of it, and the page's DOM read while peers come and go.
//
// The tests drive Chromium with github.com/chromedp/chromedp (over a pipe, no
// chromedriver). They need Chromium: the binary in $JM_CHROMIUM, else /usr/bin/chromium
// (Debian's package "chromium"), else chromium or chromium-browser on $PATH. Without one
// they are skipped, unless CI=true, where they fail (.ci/run installs it).
package browser
