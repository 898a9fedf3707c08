#!/usr/bin/env node
// Installs whatever a fresh machine lacks before `npm start` / `npm test`: npm packages (npm ci) and, for
// tests, Debian's chromium (WebGPU on SwiftShader for the browser tests, and its Vulkan ICD for Dawn in
// Node) plus the Vulkan loader. Uses only Node built-ins: it runs before node_modules exists.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const purpose = process.argv.includes('--for') ? process.argv[process.argv.indexOf('--for') + 1] : 'test';

function run(cmd, args) {
  console.log(`setup: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`setup: '${cmd} ${args.join(' ')}' failed (exit ${r.status})`);
    process.exit(1);
  }
}

function npmPackagesCurrent() {
  const installed = join(root, 'node_modules', '.package-lock.json');
  if (!existsSync(installed)) return false;
  return statSync(installed).mtimeMs >= statSync(join(root, 'package-lock.json')).mtimeMs;
}

function hasVulkanLoader() {
  try {
    return execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }).includes('libvulkan.so.1');
  } catch {
    return false;
  }
}

if (!npmPackagesCurrent()) run('npm', ['ci', '--no-audit', '--no-fund']);

if (purpose === 'test') {
  const missing = [];
  if (!existsSync('/usr/bin/chromium')) missing.push('chromium');
  if (!hasVulkanLoader()) missing.push('libvulkan1');
  if (missing.length > 0) {
    if (process.platform === 'linux' && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) {
      run('apt-get', ['update', '-q']);
      run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing]);
    } else {
      console.error(
        `setup: the tests need ${missing.join(' and ')} (Debian packages). Install them, e.g.\n` +
          `  sudo apt-get install -y ${missing.join(' ')}\n` +
          'or set CHROMIUM_PATH to a Chromium with WebGPU.',
      );
      process.exit(1);
    }
  }
}
