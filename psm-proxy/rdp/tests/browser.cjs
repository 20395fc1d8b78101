// Drives Debian's Chromium through the gateway's browser page (playwright-core, no browser
// download): log in, wait for the desktop, type a command, wait for the session to end.
// Usage: node browser.cjs URL USER PASSWORD COMMAND SCREENSHOT
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

(async () => {
  const [url, user, password, command, shot] = process.argv.slice(2);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'psm-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    await page.goto(url);
    await page.fill('#user', user);
    await page.fill('#password', password);
    await page.click('#connect');
    await page.waitForFunction(() => window.psm.ready || window.psm.error, null, { timeout: 60000 });
    const error = await page.evaluate(() => window.psm.error);
    if (error) { console.log(JSON.stringify({ error })); return; }
    // Wait for the desktop to be drawn and settle.
    let last = -1, stable = 0;
    for (let i = 0; i < 600 && stable < 15; i++) {
      const f = await page.evaluate(() => window.psm.frames);
      stable = (f > 0 && f === last) ? stable + 1 : 0;
      last = f;
      await page.waitForTimeout(100);
    }
    await page.mouse.click(200, 200 + (await page.locator('#screen').boundingBox()).y);
    await page.keyboard.type(command, { delay: 40 });
    await page.keyboard.press('Enter');
    console.log('typed');
    await page.waitForFunction(() => window.psm.ended, null, { timeout: 90000 });
    await page.locator('#screen').screenshot({ path: shot });
    const result = await page.evaluate(() => window.psm);
    console.log(JSON.stringify(result));
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch((e) => { console.error(e); process.exit(1); });
