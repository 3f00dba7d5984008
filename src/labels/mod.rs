//! Barcode labels for serials: ZPL for Zebra printers and PDF label sheets.
