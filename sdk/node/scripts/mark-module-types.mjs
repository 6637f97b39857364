// Both builds use plain `.js` files; a package.json in each output folder
// tells Node which module system those files use.
import { writeFileSync } from 'node:fs';
for (const [dir, type] of [['esm', 'module'], ['cjs', 'commonjs']]) {
  writeFileSync(new URL(`../dist/${dir}/package.json`, import.meta.url), JSON.stringify({ type }) + '\n');
}
