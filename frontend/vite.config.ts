/// <reference types="vitest/config" />
import { defineConfig } from 'vite';

const gateway = process.env.DAMAGELENS_GATEWAY ?? 'http://127.0.0.1:8000';

export default defineConfig({
  base: '/',
  // Vite's built-in transform handles TSX; no React plugin needed (fast refresh is not used).
  oxc: { jsx: { runtime: 'automatic', importSource: 'react' } },
  server: {
    proxy: {
      '/v1': { target: gateway, changeOrigin: true },
      '/healthz': { target: gateway, changeOrigin: true },
    },
  },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false },
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
  },
});
