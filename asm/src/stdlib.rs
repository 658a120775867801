//! The stdlib: .basm modules under `stdlib/`, embedded in the binary. `.import NAME` finds them
//! when no `NAME.basm` lies beside the importing file.

/// (module name, source) of every stdlib module.
pub static MODULES: &[(&str, &str)] = &[];

/// The source of stdlib module `name`.
pub fn source(name: &str) -> Option<&'static str> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
