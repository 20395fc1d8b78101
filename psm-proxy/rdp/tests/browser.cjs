// Drives Debian's Chromium through the gateway's browser page (playwright-core, no browser
// download): log in, wait for the desktop, type a command, wait for the session to end.
// Usage: node browser.cjs URL USER PASSWORD COMMAND SCREENSHOT
// With a session drive: PSM_UPLOAD=FILE uploads FILE through the page before typing;
// PSM_DOWNLOAD=NAME=SAVEAS waits (after typing) until the drive lists NAME, downloads it
// through the page and saves it as SAVEAS; PSM_FILES_SHOT=PNG screenshots the page then.
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
    if (process.env.PSM_UPLOAD) {
      const name = path.basename(process.env.PSM_UPLOAD);
      await page.setInputFiles('#upload', process.env.PSM_UPLOAD);
      await page.waitForFunction((n) => window.psm.uploaded.includes(n) || window.psm.fileError,
        name, { timeout: 30000 });
      const fileError = await page.evaluate(() => window.psm.fileError);
      if (fileError) { console.log(JSON.stringify({ fileError })); return; }
      console.log('uploaded');
    }
    await page.mouse.click(200, 200 + (await page.locator('#screen').boundingBox()).y);
    await page.keyboard.type(command, { delay: 40 });
    await page.keyboard.press('Enter');
    console.log('typed');
    if (process.env.PSM_DOWNLOAD) {
      const spec = process.env.PSM_DOWNLOAD;
      const name = spec.slice(0, spec.indexOf('=')), saveAs = spec.slice(spec.indexOf('=') + 1);
      let listed = false;
      for (let i = 0; i < 90 && !listed; i++) {
        await page.click('#refresh');
        await page.waitForTimeout(1000);
        listed = await page.evaluate((n) => window.psm.files.some((f) => f.name === n && f.size > 0), name);
      }
      if (!listed) { console.log(JSON.stringify({ error: `the drive never listed ${name}` })); return; }
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.locator('#file-list button.file', { hasText: name }).click(),
      ]);
      await download.saveAs(saveAs);
      if (process.env.PSM_FILES_SHOT) await page.screenshot({ path: process.env.PSM_FILES_SHOT });
      console.log('downloaded');
    }
    await page.waitForFunction(() => window.psm.ended, null, { timeout: 90000 });
    await page.locator('#screen').screenshot({ path: shot });
    const result = await page.evaluate(() => window.psm);
    console.log(JSON.stringify(result));
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch((e) => { console.error(e); process.exit(1); });
