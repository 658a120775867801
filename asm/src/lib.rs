//! ember-asm: the .basm lexer, parser, assembler, disassembler and diagnostics.
