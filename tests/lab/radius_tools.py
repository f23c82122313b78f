#!/usr/bin/env python3
"""RADIUS probes that lab tests run INSIDE a lab host (e.g. the router, as the NAS).

  radius_tools.py auth SERVER SECRET USER PASSWORD NAS_IP      -> one JSON line: code, attributes
  radius_tools.py acct SERVER SECRET USER SESSION STATUS NAS_IP -> one JSON line: code
  radius_tools.py listen BIND CLIENT SECRET PORT               -> 'listening', then one JSON line
                                                                  per Disconnect/CoA request (ACKed)
Uses the lab's pyrad dictionary (lab/radius.dict).
"""
import json
import sys
import time
from pathlib import Path

from pyrad import packet, server
from pyrad.client import Client
from pyrad.dictionary import Dictionary

DICT = Path(__file__).resolve().parents[2] / "lab" / "radius.dict"
CODES = {packet.AccessAccept: "Access-Accept", packet.AccessReject: "Access-Reject",
         packet.AccountingResponse: "Accounting-Response",
         packet.DisconnectRequest: "Disconnect-Request", packet.CoARequest: "CoA-Request"}


def plain(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def attributes(pkt):
    return {key: [plain(v) for v in pkt[key]] for key in pkt.keys()}


def client(server_ip, secret):
    return Client(server=server_ip, secret=secret.encode(), dict=Dictionary(str(DICT)), timeout=2, retries=2)


def auth(server_ip, secret, user, password, nas_ip):
    c = client(server_ip, secret)
    req = c.CreateAuthPacket(code=packet.AccessRequest, User_Name=user, NAS_IP_Address=nas_ip, NAS_Port=1)
    req["User-Password"] = req.PwCrypt(password)
    reply = c.SendPacket(req)
    print(json.dumps({"code": CODES.get(reply.code, reply.code), "attributes": attributes(reply)}))


def acct(server_ip, secret, user, session, status, nas_ip):
    c = client(server_ip, secret)
    req = c.CreateAcctPacket(User_Name=user, NAS_IP_Address=nas_ip, Acct_Status_Type=status,
                             Acct_Session_Id=session, Framed_IP_Address="10.99.1.5",
                             Event_Timestamp=int(time.time()))
    if status == "Stop":
        req["Acct-Session-Time"] = 3
        req["Acct-Terminate-Cause"] = "User-Request"
    reply = c.SendPacket(req)
    print(json.dumps({"code": CODES.get(reply.code, reply.code)}))


class Listener(server.Server):
    def HandleDisconnectPacket(self, pkt):
        print(json.dumps({"code": CODES.get(pkt.code, pkt.code), "source": pkt.source[0],
                          "attributes": attributes(pkt)}), flush=True)
        reply = self.CreateReplyPacket(pkt)
        reply.code = packet.DisconnectACK if pkt.code == packet.DisconnectRequest else packet.CoAACK
        self.SendReplyPacket(pkt.fd, reply)

    HandleCoaPacket = HandleDisconnectPacket


def listen(bind, client_ip, secret, port):
    srv = Listener(addresses=[bind], dict=Dictionary(str(DICT)), coaport=int(port),
                   auth_enabled=False, acct_enabled=False, coa_enabled=True,
                   hosts={client_ip: server.RemoteHost(client_ip, secret.encode(), "aaa")})
    print("listening", flush=True)
    srv.Run()


if __name__ == "__main__":
    {"auth": auth, "acct": acct, "listen": listen}[sys.argv[1]](*sys.argv[2:])
