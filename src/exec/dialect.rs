//! The words of the session harness in each shell labrun drives: bash, and POSIX shells
//! (busybox ash, dash) for images without bash.
//!
//! The harness is the same in both (see `session`); what differs is how it gets past what a
//! cell may have redefined. In bash, POSIX mode finds `unset` before any function, which then
//! removes functions named `builtin` or `enable`, and everything goes through `builtin`. In a
//! POSIX shell, special builtins (`.`, `set`, `unset`, `trap`, `exit`, `export`) are found
//! before functions anyway, and `command` (once a function of that name is unset) reaches the
//! regular ones. What a POSIX shell cannot do, the book lists: its state file keeps exported
//! variables and the umask (no function dump), and a per-cell `env:` stays set after the cell.

use super::session::shell_quote;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Bash,
    Posix,
}

impl Dialect {
    /// The dialect of a shell program, by its name.
    pub fn of(program: &str) -> Dialect {
        let name = program.rsplit('/').next().unwrap_or(program);
        if name == "bash" {
            Dialect::Bash
        } else {
            Dialect::Posix
        }
    }

    /// Runs a program past any function or alias of its name.
    pub fn run_tool(self) -> &'static str {
        match self {
            Dialect::Bash => "builtin command",
            Dialect::Posix => "command",
        }
    }

    /// Quiet, non-interactive settings for the session.
    pub fn prelude(self) -> &'static str {
        match self {
            Dialect::Bash => {
                "builtin set +o history +o monitor +H 2>/dev/null; builtin unset HISTFILE\n"
            }
            // Which of bash's resettable traps this shell has (busybox ash has ERR, dash none),
            // fixed for the session: a cell cannot unset a read-only variable.
            Dialect::Posix => {
                "set +m 2>/dev/null\nif (\\trap - ERR) 2>/dev/null; then __labrun_traps=ERR; fi; \\readonly __labrun_traps\n"
            }
        }
    }

    /// Defines `__labrun_save`, which writes what the next shell needs into `{dir}/state`.
    pub fn save_function(self, dir: &str) -> String {
        match self {
            Dialect::Bash => format!(
                "__labrun_save() {{ {{ builtin declare -p; builtin declare -f; builtin shopt -p; \
                 builtin set +o; builtin printf 'builtin cd -- %q\\n' \"$PWD\"; builtin umask -p; }} \
                 >{dir}/state 2>/dev/null; }}\n"
            ),
            Dialect::Posix => format!(
                "__labrun_save() {{ \\unset -f command printf umask 2>/dev/null; \
                 {{ \\export -p; \\command printf 'umask %s\\n' \"$(\\command umask)\"; \
                 \\command printf 'cd -- \"%s\"\\n' \"$PWD\"; }} \
                 >{dir}/state 2>/dev/null; }}\n"
            ),
        }
    }

    /// The traps that save the state when the shell exits or is told to stop.
    pub fn save_traps(self) -> &'static str {
        match self {
            Dialect::Bash => {
                "builtin trap '__labrun_save' EXIT\nbuiltin trap '__labrun_save; builtin exit 143' TERM\n"
            }
            Dialect::Posix => {
                "\\trap '__labrun_save' EXIT\n\\trap '__labrun_save; \\exit 143' TERM\n"
            }
        }
    }

    pub fn cd(self, dir: &str) -> String {
        match self {
            Dialect::Bash => format!("builtin cd -- {} 2>/dev/null\n", shell_quote(dir)),
            Dialect::Posix => format!("\\command cd -- {} 2>/dev/null\n", shell_quote(dir)),
        }
    }

    pub fn source_quietly(self, file: &str) -> String {
        match self {
            Dialect::Bash => format!("builtin . {} >/dev/null 2>&1\n", shell_quote(file)),
            Dialect::Posix => format!("\\. {} >/dev/null 2>&1\n", shell_quote(file)),
        }
    }

    /// Writes a line to the status socket (fd 3).
    pub fn report(self, text: &str) -> String {
        match self {
            Dialect::Bash => format!("builtin printf '{text}\\n' >&3\n"),
            Dialect::Posix => format!("\\command printf '{text}\\n' >&3\n"),
        }
    }

    /// The line the shell reads: sources `file`, handing it the nonce.
    pub fn batch_line(self, file: &str, nonce: &str) -> String {
        match self {
            // In POSIX mode `.` is found before any function.
            Dialect::Bash => format!("POSIXLY_CORRECT=y; \\. {} {nonce}\n", shell_quote(file)),
            Dialect::Posix => format!("__labrun_n={nonce}; \\. {}\n", shell_quote(file)),
        }
    }

    /// Undoes whatever a cell defined to get in the harness's way.
    pub fn unshadow(self) -> &'static str {
        match self {
            Dialect::Bash => {
                "POSIXLY_CORRECT=y; \\unset -f builtin enable; \\unset POSIXLY_CORRECT; \\set +o posix; \\enable builtin . printf set"
            }
            Dialect::Posix => "\\unset -f command printf cd 2>/dev/null",
        }
    }

    /// The wrapper's first line.
    pub fn wrapper_head(self) -> String {
        match self {
            Dialect::Bash => format!("__labrun_n=$1; {}; \\builtin set --\n", self.unshadow()),
            Dialect::Posix => format!("{}; \\set --\n", self.unshadow()),
        }
    }

    /// What each command's file starts with, on the command's own first line.
    pub fn command_head(self, ran: &str) -> String {
        match self {
            Dialect::Bash => format!(
                "__labrun_ran={ran}; builtin trap - DEBUG RETURN ERR; builtin unalias -a; \
                 builtin shopt -u expand_aliases; "
            ),
            // A POSIX shell expands aliases as it reads a line, so the resets come on the
            // wrapper's line before (`before_command`).
            Dialect::Posix => format!("__labrun_ran={ran}; "),
        }
    }

    /// The wrapper's line before each command.
    pub fn before_command(self) -> &'static str {
        match self {
            Dialect::Bash => "__labrun_ran=\n",
            Dialect::Posix => {
                "__labrun_ran=; ${__labrun_traps:+trap - $__labrun_traps}; \\unalias -a 2>/dev/null\n"
            }
        }
    }

    /// Sources a command's file.
    pub fn source(self, assignments: &str, file: &str, redirects: &str) -> String {
        match self {
            Dialect::Bash => format!("{assignments}\\builtin . {} {redirects}", shell_quote(file)),
            Dialect::Posix => format!("{assignments}\\. {} {redirects}", shell_quote(file)),
        }
    }

    /// `cd` for one command only: saves the directory first.
    pub fn enter(self, dir: &str, redirects: &str) -> String {
        let cd = match self {
            Dialect::Bash => "\\builtin cd",
            Dialect::Posix => "\\command cd",
        };
        format!(
            "__labrun_pwd=$PWD; {cd} -- {} {redirects}",
            shell_quote(dir)
        )
    }

    pub fn leave(self) -> &'static str {
        match self {
            Dialect::Bash => "\\builtin cd -- \"$__labrun_pwd\"\n",
            Dialect::Posix => "\\command cd -- \"$__labrun_pwd\"\n",
        }
    }

    /// Reports command `i`'s status on fd 3.
    pub fn status_report(self, i: usize) -> String {
        let printf = match self {
            Dialect::Bash => "\\builtin printf",
            Dialect::Posix => "\\command printf",
        };
        format!(
            "__labrun_st=$?; {}\n{printf} '%s.{i} %s %s\\n' \"$__labrun_n\" \"$__labrun_st\" \"${{__labrun_ran-}}\" >&3\n",
            self.unshadow()
        )
    }

    /// Asks a shell that ignored SIGTERM to save its state and exit.
    pub fn save_and_exit(self) -> &'static str {
        match self {
            Dialect::Bash => "builtin trap - EXIT; __labrun_save; builtin exit 143\n",
            Dialect::Posix => "\\trap - EXIT; __labrun_save; \\exit 143\n",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_follows_the_program_name() {
        assert_eq!(Dialect::of("/usr/bin/bash"), Dialect::Bash);
        assert_eq!(Dialect::of("/bin/sh"), Dialect::Posix);
        assert_eq!(Dialect::of("dash"), Dialect::Posix);
    }
}
