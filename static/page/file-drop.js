// Drag and drop anywhere on the page: files and whole folders (read recursively through the entries API),
// handed on as [{ file, path }] with each file's path inside the dropped folder.

async function entryFiles(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject)).catch(() => null);
    if (file) out.push({ file, path: entry.fullPath.replace(/^\//, '') });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject)).catch(() => []);
      if (!batch.length) break;
      for (const child of batch) await entryFiles(child, out);
    }
  }
}

/** Shows `overlay` while files are dragged over the page (when `accepts()`), and calls `onFiles(list)` on a drop. */
export function initFileDrop({ overlay, accepts, onFiles }) {
  let dragDepth = 0;
  const dragsFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
  document.addEventListener('dragenter', (e) => {
    if (!dragsFiles(e) || !accepts()) return;
    dragDepth++;
    overlay.hidden = false;
  });
  document.addEventListener('dragleave', () => { if (--dragDepth <= 0) { dragDepth = 0; overlay.hidden = true; } });
  document.addEventListener('dragover', (e) => { if (dragsFiles(e) && accepts()) e.preventDefault(); });
  document.addEventListener('drop', async (e) => {
    if (!dragsFiles(e)) return;
    e.preventDefault();
    dragDepth = 0;
    overlay.hidden = true;
    // Entries must be taken synchronously, before the first await.
    const items = [...e.dataTransfer.items].filter((i) => i.kind === 'file');
    const entries = items.map((i) => i.webkitGetAsEntry?.());
    const plain = items.map((i) => i.getAsFile());
    const out = [];
    for (let i = 0; i < items.length; i++) {
      if (entries[i]) await entryFiles(entries[i], out);
      else if (plain[i]) out.push({ file: plain[i], path: plain[i].name });
    }
    onFiles(out);
  });
}
