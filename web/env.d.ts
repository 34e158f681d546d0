/// <reference types="vite/client" />

/**
 * The bundled default model (assets/default/), its INT8 export (made by the build) and its example
 * images, or null when the build had none. URLs relative to the page; `bytes`: file sizes.
 */
declare module 'virtual:default-model' {
  const model: { weights: string; int8?: string; labels?: string; config?: string; examples: string[]; bytes: { weights: number; int8?: number } } | null;
  export default model;
}
