// The guardian web app's build: two HTML entry points (the app, also copied to /pair/ and
// /invite/ for the QR and invitation links, and the crypto self-test page the tests open),
// hashed file names, no inline script or style (the server's CSP forbids them), and
// Subresource Integrity on every script and stylesheet the HTML names.
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { defineConfig } from "vite";

const here = import.meta.dirname;

/**
 * Add integrity="sha384-..." to each <script src> and <link href> of the built HTML that
 * names a file of the build. Done on the files as written (writeBundle), since Vite still
 * rewrites chunks (preload lists) during generateBundle.
 */
function subresourceIntegrity() {
  return {
    name: "minormode-sri",
    enforce: "post",
    apply: "build",
    writeBundle(options, bundle) {
      const out = options.dir;
      for (const item of Object.values(bundle)) {
        if (item.type !== "asset" || !item.fileName.endsWith(".html")) continue;
        const file = join(out, item.fileName);
        let html = readFileSync(file, "utf8");
        html = html.replace(/<(script|link)\b([^>]*?)\s(src|href)="\/([^"]+)"([^>]*)>/g, (tag, name, before, attr, path, after) => {
          if (/\sintegrity=/.test(tag) || !bundle[path]) return tag;
          const sri = "sha384-" + createHash("sha384").update(readFileSync(join(out, path))).digest("base64");
          return `<${name}${before} ${attr}="/${path}" integrity="${sri}"${after}>`;
        });
        if (/<script(?![^>]*\bsrc=)[^>]*>/.test(html) || /<style\b/.test(html) || /\sstyle="/.test(html)) {
          this.error(`${item.fileName}: inline script or style would break the CSP`);
        }
        writeFileSync(file, html);
      }
      // the QR link (/pair#...) and the invitation link (/invite#...) open the same app
      for (const dir of ["pair", "invite"]) {
        mkdirSync(join(out, dir), { recursive: true });
        copyFileSync(join(out, "index.html"), join(out, dir, "index.html"));
      }
    },
  };
}

export default defineConfig({
  root: here,
  base: "/",
  publicDir: resolve(here, "public"),
  plugins: [subresourceIntegrity()],
  // @hpke/common falls back to node:crypto outside browsers; here it is the browser's
  resolve: { alias: { crypto: resolve(here, "src/node-crypto-stub.js") } },
  build: {
    outDir: resolve(here, "dist"),
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0, // no data: URLs for scripts; images are files
    chunkSizeWarningLimit: 400,
    rollupOptions: {
      input: {
        main: resolve(here, "index.html"),
        selftest: resolve(here, "selftest.html"),
      },
    },
  },
});
