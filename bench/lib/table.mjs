// Prints rows as an aligned text table. Columns are keys, or { key, title, format, align }.

function normalise(column) {
  if (typeof column === 'string') return { key: column, title: column, format: defaultFormat, align: undefined };
  return { title: column.key, format: defaultFormat, ...column };
}

function defaultFormat(value) {
  if (value === undefined || value === null) return '-';
  if (typeof value === 'number') {
    if (Number.isInteger(value)) return String(value);
    return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
  }
  return String(value);
}

/** Returns the table as a string (one line per row, a header and a rule). */
export function formatTable(rows, columns) {
  const spec = columns.map(normalise);
  const cells = rows.map((row) => spec.map((column) => column.format(row[column.key], row)));
  const widths = spec.map((column, index) => Math.max(column.title.length, ...cells.map((line) => line[index].length)));
  const numeric = spec.map((column, index) => column.align ?? (rows.every((row) => typeof row[column.key] !== 'string') ? 'right' : 'left'));
  const pad = (text, index) => (numeric[index] === 'right' ? text.padStart(widths[index]) : text.padEnd(widths[index]));
  const lines = [
    spec.map((column, index) => pad(column.title, index)).join('  '),
    widths.map((width) => '-'.repeat(width)).join('  '),
    ...cells.map((line) => line.map(pad).join('  ')),
  ];
  return lines.map((line) => line.trimEnd()).join('\n');
}

export function printTable(rows, columns, out = process.stdout) {
  out.write(formatTable(rows, columns) + '\n');
}
