//! A cell's `user:` and `shell:`: its commands run through `su` as that user, or through
//! another shell program, inside the session (working directory and exported variables
//! carry; the other shell's own variables and functions do not come back).

use super::dialect::Dialect;
use super::session::shell_quote;

/// `script` as it must be written to the session so that it runs as `user` with `shell`
/// (the session's own shell program, `session_shell`, when only `user` is set).
pub fn wrap(
    script: &str,
    user: Option<&str>,
    shell: Option<&str>,
    session_shell: &str,
    dialect: Dialect,
) -> String {
    let run_tool = dialect.run_tool();
    let program = |name: &str| {
        if name.contains('/') {
            shell_quote(name)
        } else {
            format!("\"$({run_tool} -v {})\"", shell_quote(name))
        }
    };
    match (user, shell) {
        (Some(user), shell) => format!(
            "{run_tool} su -s {} {} -c {}",
            program(shell.unwrap_or(session_shell)),
            shell_quote(user),
            shell_quote(script)
        ),
        (None, Some(shell)) => format!("{} -c {}", program(shell), shell_quote(script)),
        (None, None) => script.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_shell() {
        assert_eq!(
            wrap("id -un", None, None, "/bin/bash", Dialect::Bash),
            "id -un"
        );
        assert_eq!(
            wrap("id -un", Some("nobody"), None, "/bin/bash", Dialect::Bash),
            "builtin command su -s '/bin/bash' 'nobody' -c 'id -un'"
        );
        assert_eq!(
            wrap("echo '$0'", None, Some("sh"), "/bin/bash", Dialect::Posix),
            "\"$(command -v 'sh')\" -c 'echo '\\''$0'\\'''"
        );
    }
}
