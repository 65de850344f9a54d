/**
 * Figures: Observable Plot rendered to SVG + PNG, Jupyter display bundles.
 *
 * @module
 */

export * from "./plot.ts";
export * from "./explore.ts";
