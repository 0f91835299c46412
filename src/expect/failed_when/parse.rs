//! Parsing a `failed_when` expression into a tree: recursive descent with a depth limit.
//!
//! Names and methods are checked here, with the column of the offending token; types are
//! checked when the expression is evaluated.

use super::lex::{Tok, Token, tokenize};
use super::{MAX_DEPTH, MAX_LEN};

/// A parsed `failed_when` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub(super) root: Node,
}

/// The values a name can stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Var {
    ExitCode,
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Includes,
    StartsWith,
    EndsWith,
    Trim,
}

/// A tree node; `column` is where its operator or name was written, for eval errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    Bool(bool),
    Int(i64),
    Str(String),
    Var(Var),
    Not(Box<Node>),
    Neg(Box<Node>, usize),
    /// `a && b && c`, flat so long chains do not nest.
    And(Vec<Node>),
    Or(Vec<Node>),
    Cmp(CmpOp, Box<Node>, Box<Node>, usize),
    Call(Method, Box<Node>, Vec<Node>, usize),
    Length(Box<Node>, usize),
}

impl Expr {
    /// True when the expression reads `stdout` (which then must be captured on its own).
    pub fn names_stdout(&self) -> bool {
        self.root.names(Var::Stdout)
    }

    /// True when the expression reads `stderr`.
    pub fn names_stderr(&self) -> bool {
        self.root.names(Var::Stderr)
    }
}

impl Node {
    fn names(&self, var: Var) -> bool {
        match self {
            Node::Bool(_) | Node::Int(_) | Node::Str(_) => false,
            Node::Var(v) => *v == var,
            Node::Not(a) | Node::Neg(a, _) | Node::Length(a, _) => a.names(var),
            Node::And(items) | Node::Or(items) => items.iter().any(|n| n.names(var)),
            Node::Cmp(_, a, b, _) => a.names(var) || b.names(var),
            Node::Call(_, recv, args, _) => recv.names(var) || args.iter().any(|n| n.names(var)),
        }
    }
}

/// Parses a `failed_when` expression. Errors name the column (1-based, in characters).
pub fn parse(src: &str) -> Result<Expr, String> {
    if src.len() > MAX_LEN {
        return Err(format!(
            "expression is {} bytes long; at most {MAX_LEN} are accepted",
            src.len()
        ));
    }
    let tokens = tokenize(src)?;
    if tokens.len() == 1 {
        return Err("empty expression".to_string());
    }
    let mut parser = Parser { tokens, pos: 0 };
    let root = parser.or(0)?;
    let end = parser.peek();
    if end.kind != Tok::End {
        return Err(format!(
            "unexpected {} at column {}",
            end.kind.describe(),
            end.column
        ));
    }
    Ok(Expr { root })
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if token.kind != Tok::End {
            self.pos += 1;
        }
        token
    }

    fn expect(&mut self, kind: Tok, what: &str) -> Result<Token, String> {
        let token = self.advance();
        if token.kind == kind {
            Ok(token)
        } else {
            Err(format!(
                "expected {what} at column {}, found {}",
                token.column,
                token.kind.describe()
            ))
        }
    }

    fn deeper(&self, depth: usize) -> Result<usize, String> {
        if depth >= MAX_DEPTH {
            Err(format!(
                "expression nested too deeply at column {} (at most {MAX_DEPTH} levels)",
                self.peek().column
            ))
        } else {
            Ok(depth + 1)
        }
    }

    fn or(&mut self, depth: usize) -> Result<Node, String> {
        let depth = self.deeper(depth)?;
        let mut items = vec![self.and(depth)?];
        while self.peek().kind == Tok::OrOr {
            self.advance();
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Node::Bool(false))
        } else {
            Node::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Node, String> {
        let mut items = vec![self.equality(depth)?];
        while self.peek().kind == Tok::AndAnd {
            self.advance();
            items.push(self.equality(depth)?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Node::Bool(false))
        } else {
            Node::And(items)
        })
    }

    fn equality(&mut self, depth: usize) -> Result<Node, String> {
        let mut left = self.relational(depth)?;
        let mut chain = depth;
        loop {
            let op = match self.peek().kind {
                Tok::Eq => CmpOp::Eq,
                Tok::Ne => CmpOp::Ne,
                _ => return Ok(left),
            };
            chain = self.deeper(chain)?;
            let column = self.advance().column;
            let right = self.relational(depth)?;
            left = Node::Cmp(op, Box::new(left), Box::new(right), column);
        }
    }

    fn relational(&mut self, depth: usize) -> Result<Node, String> {
        let mut left = self.unary(depth)?;
        let mut chain = depth;
        loop {
            let op = match self.peek().kind {
                Tok::Lt => CmpOp::Lt,
                Tok::Gt => CmpOp::Gt,
                Tok::Le => CmpOp::Le,
                Tok::Ge => CmpOp::Ge,
                _ => return Ok(left),
            };
            chain = self.deeper(chain)?;
            let column = self.advance().column;
            let right = self.unary(depth)?;
            left = Node::Cmp(op, Box::new(left), Box::new(right), column);
        }
    }

    fn unary(&mut self, depth: usize) -> Result<Node, String> {
        match self.peek().kind {
            Tok::Not => {
                let depth = self.deeper(depth)?;
                self.advance();
                Ok(Node::Not(Box::new(self.unary(depth)?)))
            }
            Tok::Minus => {
                let depth = self.deeper(depth)?;
                let column = self.advance().column;
                // A negative literal stays a literal.
                if let Tok::Int(n) = self.peek().kind
                    && !matches!(
                        self.tokens.get(self.pos + 1).map(|t| &t.kind),
                        Some(Tok::Dot)
                    )
                {
                    self.advance();
                    return Ok(Node::Int(-n));
                }
                Ok(Node::Neg(Box::new(self.unary(depth)?), column))
            }
            _ => self.postfix(depth),
        }
    }

    fn postfix(&mut self, depth: usize) -> Result<Node, String> {
        let mut node = self.primary(depth)?;
        let mut chain = depth;
        while self.peek().kind == Tok::Dot {
            chain = self.deeper(chain)?;
            self.advance();
            let name = self.advance();
            let Tok::Ident(ident) = &name.kind else {
                return Err(format!(
                    "expected a method or property name at column {}, found {}",
                    name.column,
                    name.kind.describe()
                ));
            };
            let (method, arity) = match ident.as_str() {
                "length" => {
                    node = Node::Length(Box::new(node), name.column);
                    continue;
                }
                "includes" => (Method::Includes, 1),
                "startsWith" => (Method::StartsWith, 1),
                "endsWith" => (Method::EndsWith, 1),
                "trim" => (Method::Trim, 0),
                other => {
                    return Err(format!(
                        "unknown method or property `{other}` at column {} (known: includes, startsWith, endsWith, trim, length)",
                        name.column
                    ));
                }
            };
            self.expect(Tok::LParen, &format!("`(` after `{ident}`"))?;
            let mut args = Vec::new();
            if self.peek().kind != Tok::RParen {
                args.push(self.or(chain)?);
                while self.peek().kind == Tok::Comma {
                    self.advance();
                    args.push(self.or(chain)?);
                }
            }
            self.expect(Tok::RParen, "`)`")?;
            if args.len() != arity {
                return Err(format!(
                    "`{ident}` takes {arity} argument{} but got {} at column {}",
                    if arity == 1 { "" } else { "s" },
                    args.len(),
                    name.column
                ));
            }
            node = Node::Call(method, Box::new(node), args, name.column);
        }
        Ok(node)
    }

    fn primary(&mut self, depth: usize) -> Result<Node, String> {
        let token = self.advance();
        match token.kind {
            Tok::Int(n) => Ok(Node::Int(n)),
            Tok::Str(s) => Ok(Node::Str(s)),
            Tok::Ident(name) => match name.as_str() {
                "exitCode" => Ok(Node::Var(Var::ExitCode)),
                "stdout" => Ok(Node::Var(Var::Stdout)),
                "stderr" => Ok(Node::Var(Var::Stderr)),
                "true" => Ok(Node::Bool(true)),
                "false" => Ok(Node::Bool(false)),
                other => Err(format!(
                    "unknown name `{other}` at column {} (known: exitCode, stdout, stderr, true, false)",
                    token.column
                )),
            },
            Tok::LParen => {
                let inner = self.or(depth)?;
                self.expect(Tok::RParen, "`)`")?;
                Ok(inner)
            }
            other => Err(format!(
                "expected a value at column {}, found {}",
                token.column,
                other.describe()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cases: &[(&str, bool, bool)] = &[
            ("exitCode != 0", false, false),
            ("!stdout.includes('x')", true, false),
            ("stderr.length > 0", false, true),
            (
                "exitCode == 0 && stdout.trim() == 'ok' || stderr.includes('e')",
                true,
                true,
            ),
            // Every occurrence is bound, not only the first.
            (
                "exitCode > 1 || exitCode < 0 || 'a'.includes(stderr)",
                false,
                true,
            ),
            ("('x').includes(stdout)", true, false),
        ];
        for (src, out, err) in cases {
            let e = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(e.names_stdout(), *out, "{src}");
            assert_eq!(e.names_stderr(), *err, "{src}");
        }
    }

    #[test]
    fn shapes() {
        let e = parse("-5").unwrap();
        assert_eq!(e.root, Node::Int(-5));
        let e = parse("a || b".replace('a', "true").replace('b', "false").as_str()).unwrap();
        assert_eq!(e.root, Node::Or(vec![Node::Bool(true), Node::Bool(false)]));
        let e = parse("1 < 2 == true").unwrap();
        assert!(matches!(e.root, Node::Cmp(CmpOp::Eq, _, _, 7)));
        let e = parse("true || false && false").unwrap();
        assert_eq!(
            e.root,
            Node::Or(vec![
                Node::Bool(true),
                Node::And(vec![Node::Bool(false), Node::Bool(false)])
            ])
        );
    }

    #[test]
    fn errors_name_the_column() {
        let cases: &[(&str, &str)] = &[
            ("", "empty expression"),
            ("   ", "empty expression"),
            ("exitcode != 0", "unknown name `exitcode` at column 1"),
            (
                "exitCode != 0 && status",
                "unknown name `status` at column 18",
            ),
            (
                "stdout.contains('x')",
                "unknown method or property `contains` at column 8",
            ),
            (
                "stdout.includes()",
                "`includes` takes 1 argument but got 0 at column 8",
            ),
            (
                "stdout.trim(1)",
                "`trim` takes 0 arguments but got 1 at column 8",
            ),
            (
                "stdout.includes",
                "expected `(` after `includes` at column 16",
            ),
            ("(exitCode == 0", "expected `)` at column 15"),
            (
                "exitCode ==",
                "expected a value at column 12, found the end",
            ),
            ("exitCode 0", "unexpected `0` at column 10"),
            ("stdout.1", "expected a method or property name at column 8"),
            ("&& true", "expected a value at column 1"),
        ];
        for (src, want) in cases {
            let err = parse(src).unwrap_err();
            assert!(err.contains(want), "{src:?}: {err}");
        }
    }

    #[test]
    fn limits() {
        let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).unwrap_err().contains("nested too deeply"));
        let nots = format!("{}true", "!".repeat(100));
        assert!(parse(&nots).unwrap_err().contains("nested too deeply"));
        let fine = format!("{}true{}", "(".repeat(20), ")".repeat(20));
        assert!(parse(&fine).is_ok());
        let long = format!("exitCode == 0{}", " ".repeat(MAX_LEN));
        assert!(parse(&long).unwrap_err().contains("at most 4096"));
        // A long flat chain is fine: it does not nest.
        let chain = vec!["exitCode == 1"; 200].join(" || ");
        assert!(parse(&chain).is_ok());
        let eqs = vec!["true"; 100].join(" == ");
        assert!(parse(&eqs).unwrap_err().contains("nested too deeply"));
        let calls = format!("stdout{}", ".trim()".repeat(100));
        assert!(parse(&calls).unwrap_err().contains("nested too deeply"));
    }
}
