/**
 * Small file-system helpers shared across the library.
 * @module
 */

/**
 * Whether `path` exists (file, folder or link target).
 * @throws errors other than "not found" (e.g. permission denied), so they are not mistaken for absence.
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
