//! The JSON syntax tree of `/api/v1/parse_query`, node for node as Prometheus' `translateAST`
//! (`web/api/v1/translate_ast.go`) builds it from its own parser's tree.

use std::time::{Duration, SystemTime};

use promql_parser::label::Matchers;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AtModifier, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};
use serde_json::{Value as Json, json};

/// Translates a parsed expression to Prometheus' `parse_query` JSON.
pub fn expr_to_json(expr: &Expr) -> Json {
    match expr {
        Expr::Aggregate(a) => {
            let (grouping, without) = match &a.modifier {
                Some(LabelModifier::Include(l)) => (l.labels.clone(), false),
                Some(LabelModifier::Exclude(l)) => (l.labels.clone(), true),
                None => (Vec::new(), false),
            };
            json!({
                "type": "aggregation",
                "op": a.op.to_string(),
                "expr": expr_to_json(&a.expr),
                "param": a.param.as_deref().map(expr_to_json),
                "grouping": grouping,
                "without": without,
            })
        }
        Expr::Binary(b) => {
            let both_vectors =
                b.lhs.value_type() == ValueType::Vector && b.rhs.value_type() == ValueType::Vector;
            let matching = both_vectors.then(|| {
                let m = b.modifier.as_ref();
                let card = m.map(|m| &m.card);
                let (card_name, include) = match card {
                    Some(VectorMatchCardinality::ManyToOne(l)) => ("many-to-one", l.labels.clone()),
                    Some(VectorMatchCardinality::OneToMany(l)) => ("one-to-many", l.labels.clone()),
                    Some(VectorMatchCardinality::ManyToMany) => ("many-to-many", Vec::new()),
                    // Set operators match many-to-many in Prometheus even without a modifier.
                    _ if is_set_operator(&b.op.to_string()) => ("many-to-many", Vec::new()),
                    _ => ("one-to-one", Vec::new()),
                };
                let (labels, on) = match m.and_then(|m| m.matching.as_ref()) {
                    Some(LabelModifier::Include(l)) => (l.labels.clone(), true),
                    Some(LabelModifier::Exclude(l)) => (l.labels.clone(), false),
                    None => (Vec::new(), false),
                };
                json!({ "card": card_name, "labels": labels, "on": on, "include": include })
            });
            json!({
                "type": "binaryExpr",
                "op": b.op.to_string(),
                "lhs": expr_to_json(&b.lhs),
                "rhs": expr_to_json(&b.rhs),
                "matching": matching,
                "bool": b.modifier.as_ref().is_some_and(|m| m.return_bool),
            })
        }
        Expr::Call(c) => json!({
            "type": "call",
            "func": {
                "name": c.func.name,
                "argTypes": c.func.arg_types.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "variadic": c.func.variadic,
                "returnType": c.func.return_type.to_string(),
            },
            "args": c.args.args.iter().map(|a| expr_to_json(a)).collect::<Vec<_>>(),
        }),
        Expr::MatrixSelector(m) => {
            let mut v = selector_json(&m.vs);
            if let Json::Object(map) = &mut v {
                map.insert("type".into(), json!("matrixSelector"));
                map.insert("range".into(), json!(millis(m.range)));
            }
            v
        }
        Expr::Subquery(s) => json!({
            "type": "subquery",
            "expr": expr_to_json(&s.expr),
            "range": millis(s.range),
            "offset": offset_ms(s.offset.as_ref()),
            "step": millis(s.step.unwrap_or(Duration::ZERO)),
            "timestamp": timestamp(s.at.as_ref()),
            "startOrEnd": start_or_end(s.at.as_ref()),
        }),
        Expr::NumberLiteral(n) => json!({ "type": "numberLiteral", "val": go_format_float(n.val) }),
        Expr::Paren(p) => json!({ "type": "parenExpr", "expr": expr_to_json(&p.expr) }),
        Expr::StringLiteral(s) => json!({ "type": "stringLiteral", "val": s.val }),
        Expr::Unary(u) => json!({ "type": "unaryExpr", "op": "-", "expr": expr_to_json(&u.expr) }),
        Expr::VectorSelector(vs) => selector_json(vs),
        Expr::Extension(e) => json!({ "type": e.expr.name() }),
    }
}

fn is_set_operator(op: &str) -> bool {
    matches!(op, "and" | "or" | "unless")
}

fn selector_json(vs: &VectorSelector) -> Json {
    json!({
        "type": "vectorSelector",
        "name": vs.name.clone().unwrap_or_default(),
        "offset": offset_ms(vs.offset.as_ref()),
        "matchers": matchers_json(&vs.matchers, vs.name.as_deref()),
        "timestamp": timestamp(vs.at.as_ref()),
        "startOrEnd": start_or_end(vs.at.as_ref()),
    })
}

/// The matchers as Prometheus lists them: those in braces, then the metric name's.
fn matchers_json(m: &Matchers, name: Option<&str>) -> Json {
    let mut out: Vec<Json> = m
        .matchers
        .iter()
        .map(|m| json!({ "name": m.name, "value": m.value, "type": m.op.to_string() }))
        .collect();
    if let Some(name) = name {
        out.push(json!({ "name": "__name__", "value": name, "type": "=" }));
    }
    Json::Array(out)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(o: Option<&Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => millis(*d),
        Some(Offset::Neg(d)) => -millis(*d),
        None => 0,
    }
}

fn timestamp(at: Option<&AtModifier>) -> Json {
    match at {
        Some(AtModifier::At(t)) => json!(match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => millis(d),
            Err(e) => -millis(e.duration()),
        }),
        _ => Json::Null,
    }
}

fn start_or_end(at: Option<&AtModifier>) -> Json {
    match at {
        Some(AtModifier::Start) => json!("start"),
        Some(AtModifier::End) => json!("end"),
        _ => Json::Null,
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, never an exponent.
fn go_format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promql_parser::parser::parse;

    fn ast(q: &str) -> Json {
        expr_to_json(&parse(q).unwrap())
    }

    #[test]
    fn selectors_list_the_name_matcher_last() {
        assert_eq!(
            ast(r#"up{job="x"} offset 5m"#),
            json!({
                "type": "vectorSelector", "name": "up", "offset": 300000,
                "matchers": [{"name": "job", "value": "x", "type": "="}, {"name": "__name__", "value": "up", "type": "="}],
                "timestamp": null, "startOrEnd": null,
            })
        );
        let m = ast("rate(x[5m] @ 10)");
        assert_eq!(m["type"], "call");
        assert_eq!(
            m["func"],
            json!({"name": "rate", "argTypes": ["matrix"], "variadic": 0, "returnType": "vector"})
        );
        assert_eq!(m["args"][0]["type"], "matrixSelector");
        assert_eq!(m["args"][0]["range"], 300000);
        assert_eq!(m["args"][0]["timestamp"], 10000);
    }

    #[test]
    fn aggregations_and_binary_expressions_carry_their_modifiers() {
        let a = ast("sum without (a) (x)");
        assert_eq!(
            (a["op"].as_str(), &a["grouping"], &a["without"], &a["param"]),
            (Some("sum"), &json!(["a"]), &json!(true), &Json::Null)
        );
        let b = ast("x / on (a) group_left (b) y");
        assert_eq!(
            b["matching"],
            json!({"card": "many-to-one", "labels": ["a"], "on": true, "include": ["b"]})
        );
        let b = ast("x and y");
        assert_eq!(b["matching"]["card"], "many-to-many");
        let b = ast("1 + 2");
        assert_eq!(b["matching"], Json::Null);
        assert_eq!(b["lhs"], json!({"type": "numberLiteral", "val": "1"}));
        let b = ast("x > bool 1");
        assert_eq!(b["bool"], true);
        let s = ast("max_over_time(x[1h:5m] @ end())");
        assert_eq!(s["args"][0]["type"], "subquery");
        assert_eq!(s["args"][0]["step"], 300000);
        assert_eq!(s["args"][0]["startOrEnd"], "end");
    }
}
