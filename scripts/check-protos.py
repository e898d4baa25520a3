#!/usr/bin/env python3
"""Checks our trimmed WhatsApp schemas against an upstream copy.

For every message, field and enum value in Sources/WAProto/Protos (WhatsApp
packages only; SignalWire/SignalStorage are libsignal's and skipped), the same
name must exist upstream with the same number, label and type. Run it when
adding fields or when WhatsApp's schema moves.

Needs protoc and Python's protobuf package. Usage:
  scripts/check-protos.py /path/to/whatsmeow/proto
(the folder holding waWa6/, waCert/, waAdv/, waCompanionReg/, waCommon/, waE2E/, waHistorySync/, waWeb/).
"""
import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ours_dir = os.path.join(root, "Sources", "WAProto", "Protos")
upstream_dir = sys.argv[1]

# our package -> (upstream package, upstream file)
PACKAGES = {
    "WAWa6": ("WAWebProtobufsWa6", "waWa6/WAWebProtobufsWa6.proto"),
    "WACert": ("WACert", "waCert/WACert.proto"),
    "WAAdv": ("WAAdv", "waAdv/WAAdv.proto"),
    "WACompanionReg": ("WACompanionReg", "waCompanionReg/WACompanionReg.proto"),
    "WACommon": ("WACommon", "waCommon/WACommon.proto"),
    "WAE2E": ("WAWebProtobufsE2E", "waE2E/WAWebProtobufsE2E.proto"),
    "WAHistorySync": ("WAWebProtobufsHistorySync", "waHistorySync/WAWebProtobufsHistorySync.proto"),
    "WAWeb": ("WAWebProtobufsWeb", "waWeb/WAWebProtobufsWeb.proto"),
    "WAServerSync": ("WAWebProtobufsServerSync", "waServerSync/WAWebProtobufsServerSync.proto"),
    "WASyncAction": ("WAWebProtobufSyncAction", "waSyncAction/WAWebProtobufSyncAction.proto"),
}


def descriptors(proto_path, files):
    with tempfile.NamedTemporaryFile(suffix=".desc") as out:
        subprocess.run(["protoc", f"--proto_path={proto_path}", "--include_imports",
                        f"--descriptor_set_out={out.name}", *files], check=True)
        fds = descriptor_pb2.FileDescriptorSet()
        fds.ParseFromString(open(out.name, "rb").read())
    return fds


def index(fds):
    """Maps 'package.Outer.Inner' to message or enum descriptors."""
    messages, enums = {}, {}

    def walk(prefix, msg):
        name = f"{prefix}.{msg.name}"
        messages[name] = msg
        for nested in msg.nested_type:
            walk(name, nested)
        for enum in msg.enum_type:
            enums[f"{name}.{enum.name}"] = enum

    for f in fds.file:
        for msg in f.message_type:
            walk(f.package, msg)
        for enum in f.enum_type:
            enums[f"{f.package}.{enum.name}"] = enum
    return messages, enums


def translate(name):
    """Our fully qualified name -> the upstream one."""
    package, _, rest = name.lstrip(".").partition(".")
    return f"{PACKAGES[package][0]}.{rest}" if package in PACKAGES else name.lstrip(".")


ours_files = [f"{p}.proto" for p in PACKAGES]
ours = index(descriptors(ours_dir, ours_files))
theirs = index(descriptors(upstream_dir, [v[1] for v in PACKAGES.values()]))

problems, checked = [], 0
for name, msg in ours[0].items():
    if name.split(".")[0] not in PACKAGES:
        continue
    up = theirs[0].get(translate(name))
    if up is None:
        problems.append(f"message {name}: not upstream")
        continue
    up_fields = {f.name: f for f in up.field}
    for field in msg.field:
        checked += 1
        other = up_fields.get(field.name)
        if other is None:
            problems.append(f"{name}.{field.name}: no such field upstream")
            continue
        if (field.number, field.label, field.type) != (other.number, other.label, other.type):
            problems.append(f"{name}.{field.name}: ours #{field.number} label {field.label} type {field.type}, "
                            f"upstream #{other.number} label {other.label} type {other.type}")
        if field.type_name and translate(field.type_name) != other.type_name.lstrip("."):
            problems.append(f"{name}.{field.name}: type {field.type_name} vs upstream {other.type_name}")
        packed = field.options.packed if field.options.HasField("packed") else None
        up_packed = other.options.packed if other.options.HasField("packed") else None
        if packed != up_packed:
            problems.append(f"{name}.{field.name}: packed {packed} vs upstream {up_packed}")
for name, enum in ours[1].items():
    if name.split(".")[0] not in PACKAGES:
        continue
    up = theirs[1].get(translate(name))
    if up is None:
        problems.append(f"enum {name}: not upstream")
        continue
    up_values = {v.name: v.number for v in up.value}
    for value in enum.value:
        checked += 1
        if up_values.get(value.name) != value.number:
            problems.append(f"{name}.{value.name} = {value.number}: upstream {up_values.get(value.name)}")

print(f"checked {checked} fields and enum values")
for p in problems:
    print("MISMATCH", p)
sys.exit(1 if problems else 0)
