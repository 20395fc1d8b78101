// Drives Debian's Chromium (playwright-core, no browser download) for psm-server's
// web_browser test. The Rust test sends one JSON step per line on stdin and reads one JSON
// answer per line on stdout, so the test (which also drives the SSH client) decides the
// order of everything.
//
// Steps: {"op":"goto","url"} {"op":"fill","sel","value"} {"op":"click","sel"}
// {"op":"type","text"} {"op":"press","key"} {"op":"waitFor","js","timeout"}
// {"op":"eval","js"} {"op":"screenshot","name"} {"op":"close"}
// Every answer carries `pwned` (a script injected through data ran), `dialogs`, `cspViolations`
// and `pageErrors` so the test can check them after every step.
//
// Usage: node web_browser.cjs SCREENSHOT_DIR
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');

const shots = process.argv[2];
fs.mkdirSync(shots, { recursive: true });

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'psm-web-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || await context.newPage();
  const seen = { dialogs: [], pageErrors: [], console: [], cspViolations: [] };
  page.on('dialog', async (d) => { seen.dialogs.push(d.message()); await d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => seen.pageErrors.push(String(e && e.message || e)));
  page.on('console', (m) => {
    const t = m.text();
    if (m.type() === 'error' || /Content Security Policy/i.test(t)) seen.console.push(t);
    if (/Content Security Policy/i.test(t)) seen.cspViolations.push(t);
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });

  const rl = readline.createInterface({ input: process.stdin });
  const answer = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
  for await (const line of rl) {
    if (!line.trim()) continue;
    let step;
    try { step = JSON.parse(line); } catch (e) { answer({ ok: false, error: `bad step: ${e}` }); continue; }
    const timeout = step.timeout || 30000;
    let value = null;
    try {
      switch (step.op) {
        case 'goto': await page.goto(step.url, { waitUntil: 'domcontentloaded', timeout }); break;
        case 'fill': await page.fill(step.sel, step.value, { timeout }); break;
        case 'click': await page.click(step.sel, { timeout }); break;
        case 'type': await page.keyboard.type(step.text, { delay: 30 }); break;
        case 'press': await page.keyboard.press(step.key); break;
        case 'waitFor': {
          // Polled with page.evaluate (DevTools evaluation), not waitForFunction: the UI's CSP
          // forbids eval, which waitForFunction's string predicates need.
          const until = Date.now() + timeout;
          let last = null;
          for (;;) {
            try {
              if (await page.evaluate(step.js)) break;
              last = null;
            } catch (e) { last = e; }
            if (Date.now() > until) throw new Error(`timed out waiting for ${step.js}${last ? ` (${last.message})` : ''}`);
            await new Promise((r) => setTimeout(r, 100));
          }
          break;
        }
        case 'eval': value = await page.evaluate(step.js); break;
        case 'screenshot': {
          const file = path.join(shots, `${step.name}.png`);
          await page.screenshot({ path: file, fullPage: !!step.fullPage });
          value = file;
          break;
        }
        case 'close':
          await context.close();
          fs.rmSync(profile, { recursive: true, force: true });
          answer({ ok: true });
          process.exit(0);
          break;
        default: throw new Error(`unknown op ${step.op}`);
      }
      const pwned = await page.evaluate(() => window.__pwned || null).catch(() => null);
      answer({ ok: true, value, url: page.url(), pwned, ...seen });
    } catch (e) {
      let diag = null;
      try { diag = await page.evaluate(() => ({ text: document.body.innerText.slice(0, 2000), psm: JSON.stringify(window.psm, (k, v) => (typeof v === 'function' || k === 'player' ? undefined : v)) })); } catch { /* page gone */ }
      answer({ ok: false, error: String(e && e.message || e), url: page.url(), diag, ...seen });
    }
  }
  await context.close();
})().catch((e) => { console.error(e); process.exit(1); });
