//! The stdlib: .basm modules under `stdlib/`, embedded in the binary. `.import NAME` finds them
//! when no `NAME.basm` lies beside the importing file.

/// (module name, source) of every stdlib module.
pub static MODULES: &[(&str, &str)] = &[
    ("lists", include_str!("../../stdlib/lists.basm")),
    ("maps", include_str!("../../stdlib/maps.basm")),
    ("timer", include_str!("../../stdlib/timer.basm")),
    ("server", include_str!("../../stdlib/server.basm")),
    ("supervisor", include_str!("../../stdlib/supervisor.basm")),
    ("registry", include_str!("../../stdlib/registry.basm")),
    ("code", include_str!("../../stdlib/code.basm")),
];

/// The source of stdlib module `name`.
pub fn source(name: &str) -> Option<&'static str> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
