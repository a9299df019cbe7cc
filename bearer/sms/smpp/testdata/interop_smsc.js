// An SMSC written with the npm "smpp" package (node-smpp), for the interop
// test of our ESME: it accepts binds of gw/pw, answers submit_sm with a
// message_id, reports each submit as a JSON line on stdout, sends a
// delivery receipt when one was asked for, and echoes the message back as a
// deliver_sm from the destination (same esm_class, data_coding, UDH and
// sar_* TLVs), as a device replying through the SMSC would. Given a
// certificate and a key it speaks SMPP over TLS (node's tls server).
'use strict';
const fs = require('fs');
const smpp = require('smpp');

// With a certificate and key (PEM files) as arguments, SMPP over TLS.
const [certFile, keyFile] = process.argv.slice(2);

let next = 1;
const hex = (b) => (b ? Buffer.from(b).toString('hex') : null);

// raw returns the short_message octets as they were on the wire.
function raw(sm) {
  if (sm === undefined || sm === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(sm)) return sm;
  let msg = sm.message;
  if (!Buffer.isBuffer(msg)) msg = Buffer.from(msg || '', 'latin1');
  if (!sm.udh || !sm.udh.length) return msg;
  const ies = Buffer.concat(sm.udh);
  return Buffer.concat([Buffer.from([ies.length]), ies, msg]);
}

const handler = (session) => {
  session.on('error', () => {});
  session.on('bind_transceiver', (pdu) => {
    if (pdu.system_id !== 'gw' || pdu.password !== 'pw') {
      session.send(pdu.response({ command_status: smpp.ESME_RINVPASWD }));
      return;
    }
    session.send(pdu.response({ system_id: 'node-smsc' }));
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => { session.send(pdu.response()); session.close(); });
  session.on('deliver_sm_resp', (pdu) => {
    console.log(JSON.stringify({ op: 'deliver_resp', seq: pdu.sequence_number, status: pdu.command_status }));
  });
  session.on('submit_sm', (pdu) => {
    const id = 'N' + (next++).toString(16).toUpperCase();
    session.send(pdu.response({ message_id: id }));
    const short = raw(pdu.short_message);
    const payload = pdu.message_payload ? raw(pdu.message_payload) : null;
    const sar = pdu.sar_msg_ref_num !== undefined ? [pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum] : null;
    console.log(JSON.stringify({
      op: 'submit', id, src: pdu.source_addr, src_ton: pdu.source_addr_ton, src_npi: pdu.source_addr_npi,
      dst: pdu.destination_addr, dst_ton: pdu.dest_addr_ton, esm: pdu.esm_class, dc: pdu.data_coding,
      rd: pdu.registered_delivery, sm: hex(short), payload: hex(payload), sar,
      ports: pdu.destination_port !== undefined ? [pdu.destination_port, pdu.source_port] : null,
    }));
    if (pdu.registered_delivery & 1) {
      const now = '2612060830';
      session.deliver_sm({
        source_addr_ton: 1, source_addr_npi: 1, source_addr: pdu.destination_addr,
        dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: pdu.source_addr,
        esm_class: smpp.ESM_CLASS.MC_DELIVERY_RECEIPT,
        short_message: Buffer.from('id:' + id + ' sub:001 dlvrd:001 submit date:' + now + ' done date:' + now + ' stat:DELIVRD err:000 text:'),
        receipted_message_id: id, message_state: smpp.MESSAGE_STATE.DELIVERED,
      });
    }
    const echo = {
      source_addr_ton: 1, source_addr_npi: 1, source_addr: pdu.destination_addr,
      dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: pdu.source_addr,
      esm_class: pdu.esm_class & 0x40, data_coding: pdu.data_coding,
    };
    if (payload) echo.message_payload = payload; else echo.short_message = short;
    if (sar) { echo.sar_msg_ref_num = sar[0]; echo.sar_total_segments = sar[1]; echo.sar_segment_seqnum = sar[2]; }
    if (pdu.destination_port !== undefined) { echo.destination_port = pdu.destination_port; echo.source_port = pdu.source_port; }
    session.deliver_sm(echo);
  });
};
const server = certFile
  ? smpp.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }, handler)
  : smpp.createServer(handler);

server.listen(0, '127.0.0.1', () => {
  console.log('PORT ' + server.address().port);
});
// The test closes our stdin when it is done: stop then, whatever happens.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(3), 120000).unref();
