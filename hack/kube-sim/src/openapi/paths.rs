//! The paths of a served kind and their operations, in OpenAPI v3 and swagger 2.0 form,
//! with the vendor extensions clients look for (`x-kubernetes-action`,
//! `x-kubernetes-group-version-kind`) and the query parameters of each verb.

use serde_json::{Map, Value, json};

use super::{DELETE_OPTIONS, PATCH, STATUS, Served};

/// An operation of a path.
struct Op {
    method: &'static str,
    action: &'static str,
    id: String,
    description: String,
    body: Option<&'static str>,
    response: String,
    params: &'static [&'static str],
}

const WRITE: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "pretty"];
const PATCH_PARAMS: &[&str] = &[
    "dryRun",
    "fieldManager",
    "fieldValidation",
    "force",
    "pretty",
];
const READ: &[&str] = &["pretty"];
const DELETE: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "propagationPolicy",
    "pretty",
];
const LIST: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "pretty",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];

fn param_description(name: &str) -> &'static str {
    match name {
        "fieldValidation" => {
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered."
        }
        "dryRun" => {
            "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed"
        }
        "fieldManager" => {
            "fieldManager is a name associated with the actor or entity that is making these changes."
        }
        "force" => {
            "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people."
        }
        "labelSelector" => {
            "A selector to restrict the list of returned objects by their labels. Defaults to everything."
        }
        "fieldSelector" => {
            "A selector to restrict the list of returned objects by their fields. Defaults to everything."
        }
        "watch" => {
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."
        }
        _ => "",
    }
}

fn param_type(name: &str) -> &'static str {
    match name {
        "force" | "watch" | "allowWatchBookmarks" | "sendInitialEvents" => "boolean",
        "limit" | "timeoutSeconds" | "gracePeriodSeconds" => "integer",
        _ => "string",
    }
}

fn ops(s: &Served) -> Vec<(String, Vec<Op>)> {
    let info = &s.info;
    let prefix = if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    let collection = if info.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", info.plural)
    } else {
        format!("{prefix}/{}", info.plural)
    };
    let scope = if info.namespaced { "Namespaced" } else { "" };
    let id_kind = format!("{scope}{}", info.kind);
    let group_id: String = info
        .group
        .split(['.', '-'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect();
    let version_id = {
        let mut c = info.version.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>())
            .unwrap_or_default()
    };
    let id = |verb: &str, suffix: &str| {
        format!(
            "{verb}{}{group_id}{version_id}{id_kind}{suffix}",
            if group_id.is_empty() { "Core" } else { "" }
        )
    };
    let def = s.definition.clone();
    let mut out = vec![(
        collection.clone(),
        vec![
            Op {
                method: "get",
                action: "list",
                id: id("list", ""),
                description: format!("list or watch objects of kind {}", info.kind),
                body: None,
                response: s.list.clone(),
                params: LIST,
            },
            Op {
                method: "post",
                action: "post",
                id: id("create", ""),
                description: format!("create a {}", info.kind),
                body: Some("object"),
                response: def.clone(),
                params: WRITE,
            },
            Op {
                method: "delete",
                action: "deletecollection",
                id: id("deleteCollection", ""),
                description: format!("delete collection of {}", info.kind),
                body: Some("delete"),
                response: STATUS.into(),
                params: DELETE,
            },
        ],
    )];
    let item = |suffix: &str, status: bool| {
        let mut v = vec![
            Op {
                method: "get",
                action: "get",
                id: id("read", suffix),
                description: format!("read the specified {}", info.kind),
                body: None,
                response: def.clone(),
                params: READ,
            },
            Op {
                method: "put",
                action: "put",
                id: id("replace", suffix),
                description: format!("replace the specified {}", info.kind),
                body: Some("object"),
                response: def.clone(),
                params: WRITE,
            },
            Op {
                method: "patch",
                action: "patch",
                id: id("patch", suffix),
                description: format!("partially update the specified {}", info.kind),
                body: Some("patch"),
                response: def.clone(),
                params: PATCH_PARAMS,
            },
        ];
        if !status {
            v.push(Op {
                method: "delete",
                action: "delete",
                id: id("delete", suffix),
                description: format!("delete a {}", info.kind),
                body: Some("delete"),
                response: STATUS.into(),
                params: DELETE,
            });
        }
        v
    };
    out.push((format!("{collection}/{{name}}"), item("", false)));
    if info.status_subresource {
        out.push((
            format!("{collection}/{{name}}/status"),
            item("Status", true),
        ));
    }
    if info.namespaced {
        out.push((
            format!("{prefix}/{}", info.plural),
            vec![Op {
                method: "get",
                action: "list",
                id: id("list", "ForAllNamespaces").replace(&id_kind, &info.kind),
                description: format!("list or watch objects of kind {}", info.kind),
                body: None,
                response: s.list.clone(),
                params: LIST,
            }],
        ));
    }
    out
}

fn path_params(path: &str) -> Vec<&'static str> {
    let mut p = Vec::new();
    if path.contains("{name}") {
        p.push("name");
    }
    if path.contains("{namespace}") {
        p.push("namespace");
    }
    p
}

fn patch_types(s: &Served) -> Vec<&'static str> {
    let mut t = vec![
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if s.info.strategic_merge {
        t.push("application/strategic-merge-patch+json");
    }
    t
}

/// Adds the kind's paths to a v3 `paths` object.
pub(super) fn v3(s: &Served, paths: &mut Map<String, Value>) {
    let gvk = super::gvk(&s.info, &s.info.kind);
    let r = |n: &str| super::reference(n);
    for (path, ops) in ops(s) {
        let mut item = Map::new();
        for op in ops {
            let parameters: Vec<Value> = op
                .params
                .iter()
                .map(|n| {
                    json!({"name": n, "in": "query", "description": param_description(n),
                                "schema": {"type": param_type(n), "uniqueItems": true}})
                })
                .collect();
            let mut o = json!({
                "tags": [s.info.group.clone() + "_" + &s.info.version],
                "description": op.description,
                "operationId": op.id,
                "parameters": parameters,
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": r(&op.response)}}},
                    "401": {"description": "Unauthorized"}
                },
                "x-kubernetes-action": op.action,
                "x-kubernetes-group-version-kind": gvk,
            });
            match op.body {
                Some("object") => {
                    o["requestBody"] =
                        json!({"content": {"*/*": {"schema": r(&s.definition)}}, "required": true});
                    o["responses"]["201"] = json!({"description": "Created", "content": {"application/json": {"schema": r(&s.definition)}}});
                }
                Some("patch") => {
                    let content: Map<String, Value> = patch_types(s)
                        .into_iter()
                        .map(|t| (t.to_string(), json!({"schema": r(PATCH)})))
                        .collect();
                    o["requestBody"] = json!({"content": content, "required": true});
                }
                Some(_) => {
                    o["requestBody"] = json!({"content": {"*/*": {"schema": r(DELETE_OPTIONS)}}});
                }
                None => {}
            }
            item.insert(op.method.into(), o);
        }
        let params: Vec<Value> = path_params(&path)
            .into_iter()
            .map(|n| {
                json!({"name": n, "in": "path", "required": true,
                            "description": format!("{n} of the {}", s.info.kind),
                            "schema": {"type": "string", "uniqueItems": true}})
            })
            .collect();
        item.insert("parameters".into(), Value::Array(params));
        paths.insert(path, Value::Object(item));
    }
}

/// Adds the kind's paths to a swagger 2.0 `paths` object.
pub(super) fn v2(s: &Served, paths: &mut Map<String, Value>) {
    let gvk = super::gvk(&s.info, &s.info.kind);
    let r = |n: &str| json!({"$ref": format!("#/definitions/{n}")});
    for (path, ops) in ops(s) {
        let mut item = Map::new();
        for op in ops {
            let mut parameters: Vec<Value> = Vec::new();
            let consumes: Vec<&str> = match op.body {
                Some("object") => {
                    parameters.push(json!({"name": "body", "in": "body", "required": true, "schema": r(&s.definition)}));
                    vec!["*/*"]
                }
                Some("patch") => {
                    parameters.push(
                        json!({"name": "body", "in": "body", "required": true, "schema": r(PATCH)}),
                    );
                    patch_types(s)
                }
                Some(_) => {
                    parameters
                        .push(json!({"name": "body", "in": "body", "schema": r(DELETE_OPTIONS)}));
                    vec!["*/*"]
                }
                None => vec!["*/*"],
            };
            parameters.extend(op.params.iter().map(|n| {
                json!({"uniqueItems": true, "type": param_type(n), "description": param_description(n),
                       "name": n, "in": "query"})
            }));
            let o = json!({
                "tags": [s.info.group.clone() + "_" + &s.info.version],
                "description": op.description,
                "operationId": op.id,
                "consumes": consumes,
                "produces": ["application/json", "application/yaml"],
                "schemes": ["https"],
                "parameters": parameters,
                "responses": {"200": {"description": "OK", "schema": r(&op.response)},
                              "401": {"description": "Unauthorized"}},
                "x-kubernetes-action": op.action,
                "x-kubernetes-group-version-kind": gvk,
            });
            item.insert(op.method.into(), o);
        }
        let params: Vec<Value> = path_params(&path)
            .into_iter()
            .map(|n| {
                json!({"uniqueItems": true, "type": "string", "required": true,
                            "description": format!("{n} of the {}", s.info.kind),
                            "name": n, "in": "path"})
            })
            .collect();
        item.insert("parameters".into(), Value::Array(params));
        paths.insert(path, Value::Object(item));
    }
}
