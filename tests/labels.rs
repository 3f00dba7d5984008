//! Labels: ZPL golden files and PDF sheets decoded back with zbarimg.
