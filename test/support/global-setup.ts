// Placeholder: replaced once the binary build exists.
export default function setup(): void {}
