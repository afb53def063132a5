//! Row filters: a small expression language for cuts on table columns, parsed into a tree and
//! evaluated on decoded batches (never run as code).
//!
//! ```text
//! mag < 22 && flag == 0
//! band IN ('g', 'r') AND NOT (snr BETWEEN 0 AND 5)
//! z IS NOT NULL || id >= 1000
//! ```
//!
//! Comparisons `== = != <> < <= > >=`, `AND`/`&&`, `OR`/`||`, `NOT`/`!`, `IN (..)`, `BETWEEN a AND
//! b`, `IS [NOT] NULL`, parentheses; literals are numbers, `'strings'` (or `"strings"`), `true`,
//! `false`. Columns are scalar (one value per row): numbers compare as numbers (integers exactly
//! up to 2^53), strings and bools by equality or order. An undefined value (TNULL, a logical
//! stored as 0, an ASCII blank) makes every comparison false, as in SQL; NaN compares false too.

use crate::io::table::batch::{ColumnData, ColumnValues};
use torchfits_format::error::{Error, Result};

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Num(f64),
    Str(String),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(String, Cmp, Lit),
    /// `column IN (..)`, negated for `NOT IN`.
    In(String, Vec<Lit>, bool),
    /// `column BETWEEN lo AND hi`, negated for `NOT BETWEEN`.
    Between(String, Lit, Lit, bool),
    /// `column IS NULL`, negated for `IS NOT NULL`.
    IsNull(String, bool),
    Const(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Str(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<Tok>> {
    let bad = |at: usize, what: &str| Error::parameter(format!("filter {text:?}: {what} at character {}", at + 1));
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    while let Some(&c) = b.get(i) {
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            b'\'' | b'"' => {
                // the quote is one byte: i + 1 is a character boundary
                let rest = text.get(i + 1..).unwrap_or_default();
                let end = rest.find(c as char).ok_or_else(|| bad(i, "an unterminated string"))?;
                out.push(Tok::Str(rest.get(..end).unwrap_or_default().to_string()));
                i += end + 2;
            }
            b'0'..=b'9' | b'.' => {
                let start = i;
                while matches!(at(i), b'0'..=b'9' | b'.' | b'e' | b'E')
                    || (matches!(at(i), b'+' | b'-') && matches!(at(i - 1), b'e' | b'E'))
                {
                    i += 1;
                }
                // ASCII bytes only: start..i are character boundaries
                let v: f64 =
                    text.get(start..i).unwrap_or_default().parse().map_err(|_| bad(start, "a malformed number"))?;
                out.push(Tok::Num(v));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while at(i).is_ascii_alphanumeric() || matches!(at(i), b'_' | b'.') {
                    i += 1;
                }
                out.push(Tok::Ident(text.get(start..i).unwrap_or_default().to_string()));
            }
            _ => {
                let two = text.get(i..i + 2).unwrap_or("");
                let op = match two {
                    "&&" => "&&",
                    "||" => "||",
                    "==" => "==",
                    "!=" => "!=",
                    "<>" => "!=",
                    "<=" => "<=",
                    ">=" => ">=",
                    _ => "",
                };
                if !op.is_empty() {
                    out.push(Tok::Op(op));
                    i += 2;
                    continue;
                }
                let op = match c {
                    b'<' => "<",
                    b'>' => ">",
                    b'=' => "==",
                    b'!' => "!",
                    b'-' => "-",
                    _ => return Err(bad(i, &format!("unexpected {:?}", c as char))),
                };
                out.push(Tok::Op(op));
                i += 1;
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    at: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> Error {
        Error::parameter(format!("filter {:?}: {what}", self.text))
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(k))
    }
    fn eat_keyword(&mut self, k: &str) -> bool {
        let yes = self.keyword(k);
        if yes {
            self.at += 1;
        }
        yes
    }
    fn eat_op(&mut self, op: &str) -> bool {
        let yes = matches!(self.peek(), Some(Tok::Op(o)) if *o == op);
        if yes {
            self.at += 1;
        }
        yes
    }
    fn expect(&mut self, t: Tok, what: &str) -> Result<()> {
        if self.peek() == Some(&t) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected {what}")))
        }
    }

    fn or(&mut self) -> Result<Expr> {
        let mut left = self.and()?;
        while self.eat_op("||") || self.eat_keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr> {
        let mut left = self.not()?;
        while self.eat_op("&&") || self.eat_keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }
    fn not(&mut self) -> Result<Expr> {
        if self.eat_op("!") || self.eat_keyword("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }
    fn literal(&mut self) -> Result<Lit> {
        let negative = self.eat_op("-");
        match self.peek().cloned() {
            Some(Tok::Num(v)) => {
                self.at += 1;
                Ok(Lit::Num(if negative { -v } else { v }))
            }
            Some(Tok::Str(s)) if !negative => {
                self.at += 1;
                Ok(Lit::Str(s))
            }
            Some(Tok::Ident(w)) if !negative && (w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false")) => {
                self.at += 1;
                Ok(Lit::Bool(w.eq_ignore_ascii_case("true")))
            }
            _ => Err(self.err("expected a number, a 'string', true or false")),
        }
    }
    fn comparison(&mut self) -> Result<Expr> {
        if self.peek() == Some(&Tok::LParen) {
            self.at += 1;
            let e = self.or()?;
            self.expect(Tok::RParen, "')'")?;
            return Ok(e);
        }
        if self.keyword("true") || self.keyword("false") {
            let yes = self.keyword("true");
            self.at += 1;
            return Ok(Expr::Const(yes));
        }
        let column = match self.peek().cloned() {
            Some(Tok::Ident(name)) => {
                self.at += 1;
                name
            }
            _ => return Err(self.err("expected a column name")),
        };
        if self.eat_keyword("is") {
            let negated = self.eat_keyword("not");
            if !self.eat_keyword("null") {
                return Err(self.err("expected NULL after IS"));
            }
            return Ok(Expr::IsNull(column, negated));
        }
        let negated = self.eat_keyword("not");
        if self.eat_keyword("in") {
            self.expect(Tok::LParen, "'(' after IN")?;
            let mut values = vec![self.literal()?];
            while self.peek() == Some(&Tok::Comma) {
                self.at += 1;
                values.push(self.literal()?);
            }
            self.expect(Tok::RParen, "')' closing IN")?;
            return Ok(Expr::In(column, values, negated));
        }
        if self.eat_keyword("between") {
            let lo = self.literal()?;
            if !self.eat_keyword("and") {
                return Err(self.err("expected AND in BETWEEN"));
            }
            let hi = self.literal()?;
            return Ok(Expr::Between(column, lo, hi, negated));
        }
        if negated {
            return Err(self.err("expected IN or BETWEEN after NOT"));
        }
        let op = match self.peek() {
            Some(Tok::Op("==")) => Cmp::Eq,
            Some(Tok::Op("!=")) => Cmp::Ne,
            Some(Tok::Op("<")) => Cmp::Lt,
            Some(Tok::Op("<=")) => Cmp::Le,
            Some(Tok::Op(">")) => Cmp::Gt,
            Some(Tok::Op(">=")) => Cmp::Ge,
            _ => return Err(self.err(&format!("expected a comparison after {column}"))),
        };
        self.at += 1;
        Ok(Expr::Compare(column, op, self.literal()?))
    }
}

impl Filter {
    /// Parses a filter. A malformed expression is a [`Parameter`](crate::ErrorKind::Parameter)
    /// error saying what was expected.
    ///
    /// ```
    /// use torchfits_core::table::Filter;
    /// let f = Filter::parse("mag < 22 && flag == 0")?;
    /// assert_eq!(f.columns(), vec!["mag", "flag"]);
    /// assert!(Filter::parse("mag <").is_err());
    /// # Ok::<(), torchfits_core::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<Filter> {
        let mut p = Parser { toks: tokenize(text)?, at: 0, text };
        if p.toks.is_empty() {
            return Err(p.err("empty"));
        }
        let expr = p.or()?;
        if p.at != p.toks.len() {
            return Err(p.err(&format!("unexpected {:?} after a complete expression", p.toks.get(p.at))));
        }
        Ok(Filter { expr, text: text.to_string() })
    }

    /// The columns the filter names, in order of first use.
    pub fn columns(&self) -> Vec<&str> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
            match e {
                Expr::And(a, b) | Expr::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Not(a) => walk(a, out),
                Expr::Compare(c, ..) | Expr::In(c, ..) | Expr::Between(c, ..) | Expr::IsNull(c, _) => {
                    if !out.iter().any(|o| o.eq_ignore_ascii_case(c)) {
                        out.push(c);
                    }
                }
                Expr::Const(_) => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.expr, &mut out);
        out
    }

    /// Which of `rows` rows pass, given decoded columns `data` and where each named column is.
    pub(crate) fn evaluate(
        &self,
        rows: usize,
        data: &[ColumnData],
        index_of: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<Vec<bool>> {
        eval(&self.expr, rows, &Columns { data, index_of }, &self.text)
    }
}

/// One scalar value of a column, for comparison.
enum Val<'a> {
    Num(f64),
    Str(&'a [u8]),
    Bool(bool),
}

/// Row `i` of `c` (a row past the column's end, which the batch's row count rules out, reads as
/// a NaN: never a panic).
fn value_at(c: &ColumnData, i: usize) -> Val<'_> {
    let num = |v: Option<f64>| Val::Num(v.unwrap_or(f64::NAN));
    match &c.values {
        ColumnValues::Bool(v) => Val::Bool(v.get(i).copied().unwrap_or(false)),
        ColumnValues::U8(v) => num(v.get(i).map(|&x| x as f64)),
        ColumnValues::I16(v) => num(v.get(i).map(|&x| x as f64)),
        ColumnValues::U16(v) => num(v.get(i).map(|&x| x as f64)),
        ColumnValues::I32(v) => num(v.get(i).map(|&x| x as f64)),
        ColumnValues::U32(v) => num(v.get(i).map(|&x| x as f64)),
        ColumnValues::I64(v) => num(v.get(i).map(|&x| x as f64)),
        ColumnValues::U64(v) => num(v.get(i).map(|&x| x as f64)),
        ColumnValues::F32(v) => num(v.get(i).map(|&x| x as f64)),
        ColumnValues::F64(v) => num(v.get(i).copied()),
        ColumnValues::Str { .. } => Val::Str(c.values.str_at(i).unwrap_or(&[])),
        // complex columns are refused before evaluation
        ColumnValues::ComplexF32(_) | ColumnValues::ComplexF64(_) => Val::Num(f64::NAN),
    }
}

/// `a op b`, or `None` when the types do not compare.
fn compare(a: &Val<'_>, op: Cmp, b: &Lit) -> Option<bool> {
    let ord = match (a, b) {
        (Val::Num(x), Lit::Num(y)) => x.partial_cmp(y),
        (Val::Str(x), Lit::Str(y)) => Some((*x).cmp(y.as_bytes())),
        (Val::Bool(x), Lit::Bool(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Lit::Num(y)) => (*y == 0.0 || *y == 1.0).then(|| (*x as u8 as f64).total_cmp(y)),
        _ => return None,
    };
    Some(match ord {
        None => false, // NaN
        Some(o) => match op {
            Cmp::Eq => o.is_eq(),
            Cmp::Ne => o.is_ne(),
            Cmp::Lt => o.is_lt(),
            Cmp::Le => o.is_le(),
            Cmp::Gt => o.is_gt(),
            Cmp::Ge => o.is_ge(),
        },
    })
}

/// The decoded columns a filter reads.
struct Columns<'d> {
    data: &'d [ColumnData],
    index_of: &'d dyn Fn(&str) -> Option<usize>,
}

fn eval(e: &Expr, rows: usize, columns: &Columns<'_>, text: &str) -> Result<Vec<bool>> {
    let col = |name: &str| -> Result<&ColumnData> {
        let c = (columns.index_of)(name)
            .and_then(|i| columns.data.get(i))
            .ok_or_else(|| Error::parameter(format!("filter {text:?}: no column named {name:?}")))?;
        let scalar = c.list_offsets.is_none()
            && (c.per_row == 1 || matches!(c.values, ColumnValues::Str { .. }))
            && !matches!(c.values, ColumnValues::ComplexF32(_) | ColumnValues::ComplexF64(_));
        if !scalar {
            return Err(Error::parameter(format!(
                "filter {text:?}: column {name:?} is not a scalar column (arrays and complex values cannot be compared)"
            )));
        }
        Ok(c)
    };
    let null = |c: &ColumnData, i: usize| c.nulls.as_ref().is_some_and(|m| m.get(i) == Some(&true));
    let mismatch =
        |name: &str| Error::parameter(format!("filter {text:?}: column {name:?} cannot be compared with that value"));
    let per_row = |name: &str, test: &dyn Fn(&Val<'_>) -> Option<bool>| -> Result<Vec<bool>> {
        let c = col(name)?;
        (0..rows)
            .map(|i| if null(c, i) { Ok(false) } else { test(&value_at(c, i)).ok_or_else(|| mismatch(name)) })
            .collect()
    };
    Ok(match e {
        Expr::Const(b) => vec![*b; rows],
        Expr::And(a, b) => {
            eval(a, rows, columns, text)?.iter().zip(eval(b, rows, columns, text)?).map(|(x, y)| *x && y).collect()
        }
        Expr::Or(a, b) => {
            eval(a, rows, columns, text)?.iter().zip(eval(b, rows, columns, text)?).map(|(x, y)| *x || y).collect()
        }
        Expr::Not(a) => eval(a, rows, columns, text)?.into_iter().map(|x| !x).collect(),
        Expr::Compare(name, op, lit) => per_row(name, &|v| compare(v, *op, lit))?,
        Expr::In(name, lits, negated) => per_row(name, &|v| {
            let mut any = false;
            for l in lits {
                any |= compare(v, Cmp::Eq, l)?;
            }
            Some(any != *negated)
        })?,
        Expr::Between(name, lo, hi, negated) => {
            per_row(name, &|v| Some((compare(v, Cmp::Ge, lo)? && compare(v, Cmp::Le, hi)?) != *negated))?
        }
        Expr::IsNull(name, negated) => {
            let c = col(name)?;
            (0..rows).map(|i| null(c, i) != *negated).collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_precedence_and_reports_malformed_filters() {
        let f = Filter::parse("a < 1 || b == 'x' && NOT c IS NULL").expect("parses");
        assert_eq!(f.columns(), vec!["a", "b", "c"]);
        // && binds tighter than ||
        assert!(matches!(f.expr, Expr::Or(_, _)));
        for bad in [
            "",
            "a <",
            "a < 1 b",
            "(a < 1",
            "a IN (1, 2",
            "a BETWEEN 1 2",
            "a IS 3",
            "'x' < a",
            "a < 'x",
            "a # 2",
            "a NOT < 2",
        ] {
            let err = Filter::parse(bad).expect_err(bad);
            assert_eq!(err.kind(), crate::ErrorKind::Parameter, "{bad}");
            assert!(err.to_string().contains("filter"), "{bad}: {err}");
        }
        assert!(Filter::parse("x >= -1.5e3 and y <> 2 or z in ('a', \"b\") and w not between 1 and 2").is_ok());
    }
}
