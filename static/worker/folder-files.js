// The photos under a folder picked with the File System Access API, listed in the search worker (not on the
// page's thread: a 10,000-photo folder is 10,000 round trips to the browser). Paths start with the folder's
// name, as an <input webkitdirectory> gives them, so either way of adding a folder recognises the other's photos.

/** Files a photo folder's listing keeps: images, including kinds the encoder refuses (HEIC, GIF, …), so the
 *  page can say why they were skipped; videos, sidecar files and hidden files are left out. */
export const PHOTO_FILE = /\.(jpe?g|png|webp|heic|heif|avif|gif|bmp|tiff?)$/i;

/** `[{ file: File, path }]` for every photo under `dir` (a FileSystemDirectoryHandle), depth first. */
export async function folderFiles(dir) {
  const out = [];
  async function walk(handle, prefix) {
    const files = [];
    for await (const entry of handle.values()) {
      if (entry.name.startsWith('.')) continue;
      if (entry.kind === 'directory') await walk(entry, `${prefix}${entry.name}/`);
      else if (PHOTO_FILE.test(entry.name)) files.push(entry);
    }
    // One getFile() is one round trip: 64 at a time.
    for (let i = 0; i < files.length; i += 64) {
      const got = await Promise.all(files.slice(i, i + 64)
        .map((f) => f.getFile().then((file) => ({ file, path: prefix + f.name }), () => null)));
      out.push(...got.filter(Boolean));
    }
  }
  await walk(dir, `${dir.name}/`);
  return out;
}
