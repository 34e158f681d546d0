/// <reference types="vite/client" />

/** The bundled default model (assets/default/) and its example images, or null when the build had none. URLs relative to the page. */
declare module 'virtual:default-model' {
  const model: { weights: string; labels?: string; config?: string; examples: string[] } | null;
  export default model;
}
